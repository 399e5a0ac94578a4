//! Every mistake in a model declaration ends in a message naming the key, what was
//! found and the fix.

mod common;
use common::{error_text, model, Project, TINY_MODEL};

fn parse_error(metadata: &str) -> String {
    error_text(Project::new(metadata).file("tiny.py", TINY_MODEL).parse())
}

#[test]
fn a_complete_declaration_parses_with_defaults() {
    let project = Project::new(&model("")).file("tiny.py", TINY_MODEL);
    let decls = project.parse().unwrap();
    assert_eq!(decls.len(), 1);
    let tiny = &decls[0];
    assert_eq!(tiny.export, ptm_build::manifest::Export::Script);
    assert_eq!(tiny.quantize, ptm_build::manifest::Quantize::None);
    assert_eq!(tiny.engine, ptm_build::manifest::Engine::Qnnpack);
    assert!(tiny.optimize && tiny.embed);
    assert_eq!(ptm_build::manifest::type_name("review_model_2"), "ReviewModel2");
}

#[test]
fn no_metadata_means_no_models() {
    assert!(Project::new("").parse().unwrap().is_empty());
}

#[test]
fn unknown_key_suggests_the_closest() {
    let text = parse_error(&model("quantise = \"dynamic\""));
    assert!(text.contains("`package.metadata.models.tiny.quantise`"), "{text}");
    assert!(text.contains("did you mean `quantize`?"), "{text}");
    assert!(text.contains("Cargo.toml"), "{text}");
}

#[test]
fn wrong_type_names_the_found_value() {
    let text = parse_error(&model("optimize = \"yes\""));
    assert!(text.contains("`package.metadata.models.tiny.optimize`") && text.contains("\"yes\" (a string)") && text.contains("true or false"), "{text}");
}

#[test]
fn unknown_choices_suggest_a_valid_one() {
    let text = parse_error(&model("quantize = \"dynamc\""));
    assert!(text.contains("one of: none, dynamic, static") && text.contains("write quantize = \"dynamic\""), "{text}");
    let text = parse_error(&model("export = \"jit\""));
    assert!(text.contains("`package.metadata.models.tiny.export`") && text.contains("script, trace"), "{text}");
    let text = parse_error(&model("engine = \"fbgem\""));
    assert!(text.contains("write engine = \"fbgemm\""), "{text}");
    let text = parse_error(&model("").replace("float32", "flaot32"));
    assert!(text.contains("inputs[0].dtype") && text.contains("write dtype = \"float32\""), "{text}");
}

#[test]
fn missing_files_name_the_key_and_the_path() {
    let text = error_text(Project::new(&model("")).parse());
    assert!(text.contains("`package.metadata.models.tiny.source`") && text.contains("tiny.py") && text.contains("does not exist"), "{text}");
    let text = parse_error(&model("weights = \"missing.pth\""));
    assert!(text.contains(".weights`") && text.contains("missing.pth"), "{text}");
    let text = parse_error(&model("quantize = \"static\"\ncalibration = \"nowhere\""));
    assert!(text.contains(".calibration`") && text.contains("nowhere"), "{text}");
}

#[test]
fn names_must_be_identifiers() {
    let text = parse_error(&model("").replace("models.tiny", "models.ReviewModel"));
    assert!(text.contains("snake_case") && text.contains("[package.metadata.models.review_model]"), "{text}");
    let text = parse_error(&model("").replace("name = \"x\"", "name = \"type\""));
    assert!(text.contains("inputs[0].name") && text.contains("snake_case Rust identifier"), "{text}");
}

#[test]
fn static_needs_calibration() {
    let text = parse_error(&model("quantize = \"static\""));
    assert!(text.contains(".calibration`") && text.contains("found:    nothing") && text.contains("quantize = \"dynamic\", which needs none"), "{text}");
}

#[test]
fn trace_needs_inputs() {
    let text = parse_error("[package.metadata.models.tiny]\nsource = \"tiny.py:build_model\"\nexport = \"trace\"\n");
    assert!(text.contains("`package.metadata.models.tiny.inputs`") && text.contains("[[package.metadata.models.tiny.inputs]]"), "{text}");
}

#[test]
fn shapes_and_ranges_are_checked() {
    let text = parse_error(&model("").replace("[1, 4]", "[1, \"tokens\"]"));
    assert!(text.contains("inputs[0].shape") && text.contains("tokens=<size used at build time>"), "{text}");
    let text = parse_error(&model("").replace("[1, 4]", "[0, 4]"));
    assert!(text.contains("inputs[0].shape") && text.contains("positive integer"), "{text}");
    let decls = Project::new(&model("").replace("[1, 4]", "[1, \"n=4\"]")).file("tiny.py", TINY_MODEL).parse().unwrap();
    assert_eq!(decls[0].inputs[0].shape[1], ptm_report::Dim::dynamic("n", 4));
    let text = parse_error(&format!("{}range = [5, 1]\n", model("")));
    assert!(text.contains("inputs[0].range") && text.contains("low < high"), "{text}");
}

/// Two inputs sharing the dimension `n`, declared as given.
fn two_inputs(first: &str, second: &str) -> String {
    format!(
        "{}\n[[package.metadata.models.tiny.inputs]]\nname = \"y\"\ndtype = \"float32\"\nshape = [{second}, 4]\n",
        model("").replace("[1, 4]", &format!("[{first}, 4]"))
    )
}

#[test]
fn a_dynamic_dimension_may_declare_its_range() {
    let decls = Project::new(&model("").replace("[1, 4]", "[\"batch=3:1..8\", 4]")).file("tiny.py", TINY_MODEL).parse().unwrap();
    assert_eq!(decls[0].inputs[0].shape[0], ptm_report::Dim::Dynamic { name: "batch".into(), example: 3, min: Some(1), max: Some(8), step: None });
    assert_eq!(decls[0].inputs[0].shape[0].range(), Some((1, 8)));
    for (shape, expected, fix) in [
        ("\"batch=3:1-8\"", "a range written <min>..<max>", "write \"batch=3:1..12\""),
        ("\"batch=3:..8\"", "a range written <min>..<max>", "write \"batch=3:1..12\""),
        ("\"batch=3:0..8\"", "a smallest size of at least 1", "write \"batch=3:1..8\""),
        ("\"batch=3:4..8\"", "(3 is not in 4..8)", "write \"batch=3:3..8\""),
        ("\"batch=30:1..8\"", "(30 is not in 1..8)", "write \"batch=30:1..30\""),
        ("\"batch=0:1..8\"", "<name>=<example size>:<min>..<max>", "write \"batch=<size used at build time>\""),
    ] {
        let text = parse_error(&model("").replace("[1, 4]", &format!("[{shape}, 4]")));
        assert!(text.contains("`package.metadata.models.tiny.inputs[0].shape`"), "{text}");
        assert!(text.contains(&format!("found:    {shape}")) && text.contains(expected) && text.contains(fix), "{shape}: {text}");
    }
}

#[test]
fn a_range_may_keep_the_multiples_of_a_step() {
    let decls = Project::new(&model("").replace("[1, 4]", "[1, \"height=64:32..128 step 16\"]")).file("tiny.py", TINY_MODEL).parse().unwrap();
    let height = &decls[0].inputs[0].shape[1];
    assert_eq!((height.range(), height.step()), (Some((32, 128)), 16));
    for (shape, expected, fix) in [
        ("\"h=64:30..128 step 16\"", "multiples of the step", "write \"h=64:32..128 step 16\""),
        ("\"h=60:32..120 step 16\"", "multiples of the step", "write \"h=64:32..112 step 16\""),
        ("\"h=64:32..128 step 0\"", "a step of at least 1", "step 64\""),
        ("\"h=64:32..128 step x\"", "a step of at least 1", "step 64\""),
    ] {
        let text = parse_error(&model("").replace("[1, 4]", &format!("[1, {shape}]")));
        assert!(text.contains("`package.metadata.models.tiny.inputs[0].shape`"), "{text}");
        assert!(text.contains(expected) && text.contains(fix), "{shape}: {text}");
    }
    // Shared by two inputs, the step is part of the one range.
    let text = parse_error(&two_inputs("\"n=16:8..64 step 8\"", "\"n=16:8..64\""));
    assert!(text.contains("`n` with the range 8..64 here and 8..64 step 8 in `x`"), "{text}");
    // A .pte exports `step * Dim`: one step as the example is a constant to torch.export.
    let text = parse_error(&model("format = \"pte\"").replace("[1, 4]", "[1, \"h=16:16..128 step 16\"]"));
    assert!(text.contains("an example size of two steps or more") && text.contains("write \"h=32:16..128 step 16\""), "{text}");
}

#[test]
fn a_shared_dimension_has_one_range_given_once_or_repeated() {
    let ranged = ptm_report::Dim::Dynamic { name: "n".into(), example: 2, min: Some(1), max: Some(8), step: None };
    for (first, second) in [("\"n=2:1..8\"", "\"n=2\""), ("\"n=2\"", "\"n=2:1..8\""), ("\"n=2:1..8\"", "\"n=2:1..8\"")] {
        let decls = Project::new(&two_inputs(first, second)).file("tiny.py", TINY_MODEL).parse().unwrap();
        assert_eq!((&decls[0].inputs[0].shape[0], &decls[0].inputs[1].shape[0]), (&ranged, &ranged), "{first}, {second}");
    }
    let text = parse_error(&two_inputs("\"n=2:1..8\"", "\"n=2:1..16\""));
    assert!(text.contains("`package.metadata.models.tiny.inputs[1].shape`") && text.contains("`n` with the range 1..16 here and 1..8 in `x`"), "{text}");
    assert!(text.contains("one range per dimension name") && text.contains("give it once"), "{text}");
    let text = parse_error(&two_inputs("\"n=2:1..8\"", "\"n=9\""));
    assert!(
        text.contains("inputs[1].shape") && text.contains("\"n=9\", outside the range 1..8 declared for `n` in `x`") && text.contains("write \"n=8\""),
        "{text}"
    );
}

#[test]
fn a_pte_refuses_an_example_size_of_one() {
    for (shape, fix) in [("\"batch=1\"", "write \"batch=2\""), ("\"batch=1:1..8\"", "write \"batch=2:1..8\"")] {
        let text = parse_error(&model("format = \"pte\"").replace("[1, 4]", &format!("[{shape}, 4]")));
        assert!(
            text.contains("`package.metadata.models.tiny.inputs[0].shape`") && text.contains("`batch` with the example size 1, with format = \"pte\""),
            "{text}"
        );
        assert!(text.contains("an example size of 2 or more: torch.export treats a size of 1 as a constant") && text.contains(fix), "{text}");
    }
    // A .ptl traces or scripts at 1 and checks other sizes itself.
    assert!(Project::new(&model("").replace("[1, 4]", "[\"batch=1\", 4]")).file("tiny.py", TINY_MODEL).parse().is_ok());
}

#[test]
fn the_range_is_part_of_the_key() {
    let key = |shape: &str| {
        let project = Project::new(&model("format = \"pte\"").replace("[1, 4]", &format!("[{shape}, 4]"))).file("tiny.py", TINY_MODEL);
        ptm_build::tooling::key_of(&project.parse().unwrap()[0], project.path(), "2.11.0", None).unwrap()
    };
    let (open, ranged, wider) = (key("\"batch=3\""), key("\"batch=3:1..8\""), key("\"batch=3:1..16\""));
    assert!(open != ranged && ranged != wider && open != wider, "{open} {ranged} {wider}");
    assert_ne!(key("\"batch=4:2..8\""), key("\"batch=4:2..8 step 2\""));
}

#[test]
fn source_forms_are_explained() {
    let text = parse_error(&model("").replace("tiny.py:build_model", "tiny.py"));
    assert!(text.contains("write source = \"tiny.py:build_model\""), "{text}");
    let text = parse_error(&model("").replace("tiny.py:build_model", "tiny.onnx"));
    assert!(text.contains("TorchScript archive"), "{text}");
}

#[test]
fn toml_syntax_errors_name_the_file() {
    let text = parse_error("[package.metadata.models.tiny\nsource = 1");
    assert!(text.contains("Cargo.toml") && text.contains("valid TOML"), "{text}");
}

#[test]
fn fbgemm_is_refused_for_arm_targets_and_allowed_for_x86() {
    let project = Project::new(&model("engine = \"fbgemm\"\nquantize = \"dynamic\"")).file("tiny.py", TINY_MODEL);
    for arm in ["aarch64-linux-android", "armv7-linux-androideabi", "aarch64-apple-ios", "aarch64-unknown-linux-gnu"] {
        let text = error_text(project.parse_for(arm));
        assert!(text.contains("`package.metadata.models.tiny.engine`") && text.contains(&format!("\"fbgemm\" while building for {arm}")), "{text}");
        assert!(text.contains("fbgemm has x86 kernels only") && text.contains("[package.metadata.models.tiny.target.x86_64] engine = \"fbgemm\""), "{text}");
    }
    for x86 in ["x86_64-linux-android", "x86_64-apple-ios", "x86_64-unknown-linux-gnu"] {
        assert_eq!(project.parse_for(x86).unwrap()[0].engine, ptm_build::manifest::Engine::Fbgemm);
    }
}

#[test]
fn per_target_tables_override_by_arch_then_by_triple() {
    let tables = "quantize = \"dynamic\"\n\n[package.metadata.models.tiny.target.x86_64]\nengine = \"fbgemm\"\n\n[package.metadata.models.tiny.target.x86_64-linux-android]\nengine = \"qnnpack\"\noptimize = false\n\n[package.metadata.models.tiny.target.aarch64]\nquantize = \"none\"";
    let project = Project::new(&model(tables)).file("tiny.py", TINY_MODEL);
    use ptm_build::manifest::{Engine, Quantize};
    let desktop = &project.parse_for("x86_64-unknown-linux-gnu").unwrap()[0];
    assert_eq!((desktop.engine, desktop.quantize, desktop.optimize), (Engine::Fbgemm, Quantize::Dynamic, true));
    let emulator = &project.parse_for("x86_64-linux-android").unwrap()[0];
    assert_eq!((emulator.engine, emulator.quantize, emulator.optimize), (Engine::Qnnpack, Quantize::Dynamic, false));
    let phone = &project.parse_for("aarch64-linux-android").unwrap()[0];
    assert_eq!((phone.engine, phone.quantize), (Engine::Qnnpack, Quantize::None));
    // The float override also takes the float tolerance default.
    assert_eq!(phone.tolerance.relative, 1e-3);
    let untargeted = &project.parse().unwrap()[0];
    assert_eq!((untargeted.engine, untargeted.quantize), (Engine::Qnnpack, Quantize::Dynamic));
}

#[test]
fn a_target_override_changes_the_cache_key_only_where_it_applies() {
    let plain = Project::new(&model("quantize = \"dynamic\"")).file("tiny.py", TINY_MODEL);
    let overridden =
        Project::new(&model("quantize = \"dynamic\"\n\n[package.metadata.models.tiny.target.x86_64]\nengine = \"fbgemm\"")).file("tiny.py", TINY_MODEL);
    let key = |project: &Project, target: &str| ptm_build::tooling::key_of(&project.parse_for(target).unwrap()[0], project.path(), "2.11.0", None).unwrap();
    assert_eq!(key(&plain, "aarch64-linux-android"), key(&overridden, "aarch64-linux-android"));
    assert_ne!(key(&plain, "x86_64-unknown-linux-gnu"), key(&overridden, "x86_64-unknown-linux-gnu"));
}

#[test]
fn target_tables_are_checked_on_every_build() {
    let text = parse_error(&model("[package.metadata.models.tiny.target.aarch64]\nengin = \"qnnpack\""));
    assert!(text.contains("`package.metadata.models.tiny.target.aarch64.engin`") && text.contains("did you mean `engine`?"), "{text}");
    let text = parse_error(&model("[package.metadata.models.tiny.target.armv7-linux-androideabi]\nengine = \"fbgem\""));
    assert!(text.contains("target.armv7-linux-androideabi.engine") && text.contains("write engine = \"fbgemm\""), "{text}");
    let text = parse_error(&model("[package.metadata.models.tiny.target.aarch64]\ninputs = []"));
    assert!(text.contains("one of: engine, quantize, optimize"), "{text}");
}

#[test]
fn runtimes_map_to_bytecode_versions_and_unknown_ones_say_what_exists() {
    let decl = |extra: &str| Project::new(&model(extra)).file("tiny.py", TINY_MODEL).parse().map(|d| (d[0].runtime.clone(), d[0].max_bytecode));
    assert_eq!(decl("runtime = \"1.10\"").unwrap(), (Some("1.10".into()), Some(7)));
    assert_eq!(decl("runtime = \"1.13\"").unwrap(), (Some("1.13".into()), Some(9)));
    assert_eq!(decl("max_bytecode = 6").unwrap(), (None, Some(6)));
    assert_eq!(decl("").unwrap(), (None, None));
    let text = parse_error(&model("runtime = \"1.7\""));
    assert!(text.contains("`package.metadata.models.tiny.runtime`") && text.contains("cannot be written by torch 2.x"), "{text}");
    let text = parse_error(&model("runtime = \"2.1\""));
    assert!(text.contains("PyTorch Mobile releases ended with 1.13"), "{text}");
    let text = parse_error(&model("runtime = \"1.13\"\nmax_bytecode = 7"));
    assert!(text.contains("both runtime and max_bytecode"), "{text}");
}

#[test]
fn an_output_named_twice_is_an_error() {
    let text = parse_error(&model("outputs = [\"logits\", \"hidden\", \"logits\"]"));
    assert!(
        text.contains("`package.metadata.models.tiny.outputs`") && text.contains("\"logits\" a second time") && text.contains("rename one of them"),
        "{text}"
    );
}

#[test]
fn a_shape_too_large_to_allocate_is_an_error() {
    let text = parse_error(&model("").replace("shape = [1, 4]", "shape = [1000000000000, 16]"));
    assert!(text.contains("inputs[0].shape") && text.contains("`x` float32 59604.6 GiB") && text.contains("at most 2.0 GiB in all"), "{text}");
    let text = parse_error(&model("").replace("shape = [1, 4]", "shape = [9223372036854775807, 9223372036854775807]"));
    assert!(text.contains("more than 2^64 bytes"), "{text}");
    let text = parse_error(&model("").replace("shape = [1, 4]", "shape = [\"batch=100000000000\", 4]"));
    assert!(text.contains("at the example sizes"), "{text}");
}

/// A second input, `mask`, of `shape`.
fn with_mask(shape: &str) -> String {
    model("") + &format!("\n[[package.metadata.models.tiny.inputs]]\nname = \"mask\"\ndtype = \"float32\"\nshape = {shape}\n")
}

#[test]
fn the_example_inputs_of_a_model_are_bounded_together_with_every_sample_counted() {
    // 400 MB is far below any one-input limit, but the build holds 8 samples of it.
    let text = parse_error(&with_mask("[1, 100000000]"));
    assert!(text.contains("`package.metadata.models.tiny.inputs[1].shape`") && text.contains("Cargo.toml:17:"), "the largest input: {text}");
    assert!(text.contains("(`x` float32 16 bytes, `mask` float32 381.5 MiB)") && text.contains("3.0 GiB for the 8 samples the build holds"), "{text}");
    assert!(text.contains("at most 2.0 GiB in all: the build generates 8 samples of every input"), "{text}");
    assert!(text.contains("fix:      declare the sizes the model really takes") && text.contains("\"tokens=128\""), "{text}");
    // Exactly the bound builds.
    let fits = with_mask("[1, 67108860]");
    Project::new(&fits).file("tiny.py", TINY_MODEL).parse().unwrap();
}

#[test]
fn a_contradiction_in_another_targets_table_fails_every_build() {
    let phone_pte = model("runtime = \"1.10\"") + "\n[package.metadata.models.tiny.target.aarch64]\nformat = \"pte\"\n";
    let project = Project::new(&phone_pte).file("tiny.py", TINY_MODEL);
    for text in [error_text(project.parse()), error_text(project.parse_for("x86_64-unknown-linux-gnu"))] {
        assert!(text.contains("`package.metadata.models.tiny.runtime`") && text.contains("Cargo.toml:7:"), "{text}");
        assert!(text.contains("in a build for aarch64 (with [package.metadata.models.tiny.target.aarch64] applied)"), "{text}");
        assert!(text.contains("remove `runtime`, or build a .ptl with format = \"ptl\""), "{text}");
    }

    // fbgemm declared for every target, with a table for an ARM triple that keeps it.
    let fbgemm = model("engine = \"fbgemm\"\nquantize = \"dynamic\"") + "\n[package.metadata.models.tiny.target.aarch64-linux-android]\noptimize = false\n";
    let text = error_text(Project::new(&fbgemm).file("tiny.py", TINY_MODEL).parse_for("x86_64-unknown-linux-gnu"));
    assert!(text.contains("`package.metadata.models.tiny.engine`") && text.contains("\"fbgemm\" while building for aarch64-linux-android"), "{text}");
    assert!(text.contains("[package.metadata.models.tiny.target.aarch64-linux-android] applied"), "{text}");

    // A target table that asks for static INT8 needs the calibration samples on every build.
    let text = parse_error(&(model("") + "\n[package.metadata.models.tiny.target.armv7]\nquantize = \"static\"\n"));
    assert!(text.contains("`package.metadata.models.tiny.calibration`") && text.contains("[package.metadata.models.tiny.target.armv7] applied"), "{text}");
}

#[test]
fn a_target_table_named_after_no_target_warns_with_the_closest_name() {
    let typo = model("quantize = \"dynamic\"") + "\n[package.metadata.models.tiny.target.x86-64]\nengine = \"fbgemm\"\n";
    let decls = Project::new(&typo).file("tiny.py", TINY_MODEL).parse_for("x86_64-unknown-linux-gnu").unwrap();
    assert_eq!(decls[0].engine, ptm_build::manifest::Engine::Qnnpack, "the table applies to no build");
    let warnings = &decls[0].warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("[package.metadata.models.tiny.target.x86-64] in ") && warnings[0].contains("Cargo.toml"), "{warnings:?}");
    assert!(
        warnings[0].contains("applies to no build; did you mean `x86_64`? rename the table to [package.metadata.models.tiny.target.x86_64]"),
        "{warnings:?}"
    );

    let abi = model("") + "\n[package.metadata.models.tiny.target.arm64-v8a]\noptimize = false\n";
    let warnings = &Project::new(&abi).file("tiny.py", TINY_MODEL).parse().unwrap()[0].warnings;
    assert!(warnings[0].contains("did you mean `aarch64-linux-android`?"), "{warnings:?}");

    for known in ["x86_64", "armv7", "i686", "aarch64-apple-ios-sim", "x86_64-linux-android"] {
        let table = model("") + &format!("\n[package.metadata.models.tiny.target.{known}]\noptimize = false\n");
        assert!(Project::new(&table).file("tiny.py", TINY_MODEL).parse().unwrap()[0].warnings.is_empty(), "{known}");
    }
}

#[test]
fn accept_trace_risk_for_a_pte_points_at_the_ptl_path() {
    let text = parse_error(&model("format = \"pte\"\naccept_trace_risk = true"));
    assert!(text.contains("`package.metadata.models.tiny.accept_trace_risk`") && text.contains("Cargo.toml:8:"), "{text}");
    assert!(text.contains("remove `accept_trace_risk`, or build a .ptl with format = \"ptl\" (package.metadata.models.tiny.format)"), "{text}");
    assert!(text.contains("belongs to the .ptl path; torch.export has no trace risk"), "{text}");
    assert!(!text.contains("export = \"script\"") && !text.contains("scripted"), "{text}");
}

#[test]
fn a_torchscript_source_for_a_pte_is_refused_with_the_python_form() {
    let archive = |extra: &str| Project::new(&model(extra).replace("tiny.py:build_model", "tiny.pt")).file("tiny.pt", "");
    let text = error_text(archive("format = \"pte\"").parse());
    assert!(text.contains("`package.metadata.models.tiny.source`") && text.contains("Cargo.toml:6:"), "{text}");
    assert!(text.contains("the TorchScript archive \"tiny.pt\" with format = \"pte\" (package.metadata.models.tiny.format)"), "{text}");
    assert!(text.contains("torch.export captures the nn.Module from Python"), "{text}");
    assert!(text.contains("write source = \"models/<file>.py:build_model\"") && text.contains("build a .ptl from the archive with format = \"ptl\""), "{text}");
    // Chosen for one architecture, it fails the desktop build too.
    let text = error_text(archive("\n[package.metadata.models.tiny.target.aarch64]\nformat = \"pte\"").parse_for("x86_64-unknown-linux-gnu"));
    assert!(text.contains("(package.metadata.models.tiny.target.aarch64.format)") && text.contains("in a build for aarch64"), "{text}");
    archive("").parse().unwrap();
}

#[test]
fn an_integer_range_must_hold_an_integer_the_type_can_hold() {
    let int_input = |range: &str| model("").replace("dtype = \"float32\"", "dtype = \"int64\"") + &format!("range = {range}\n");
    let text = parse_error(&int_input("[0.2, 0.7]"));
    assert!(
        text.contains("inputs[0].range") && text.contains("a range holding at least one integer, for int64") && text.contains("write range = [0, 1]"),
        "{text}"
    );
    let uint8 = model("").replace("dtype = \"float32\"", "dtype = \"uint8\"") + "range = [0, 1000]\n";
    let text = parse_error(&uint8);
    assert!(text.contains("values uint8 can hold, from 0 to 255") && text.contains("write range = [0, 256]"), "{text}");
    let boolean = model("").replace("dtype = \"float32\"", "dtype = \"bool\"") + "range = [0, 1]\n";
    assert!(parse_error(&boolean).contains("a bool input takes false and true"));
    // A float range needs no integer, and [0, 30522) holds token ids.
    Project::new(&(model("") + "range = [0.2, 0.7]\n")).file("tiny.py", TINY_MODEL).parse().unwrap();
    Project::new(&int_input("[0, 30522]")).file("tiny.py", TINY_MODEL).parse().unwrap();
}

#[test]
fn paths_inside_the_workspace_but_outside_the_crate_are_fine_and_others_warn() {
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("Cargo.toml"), "[workspace]\nmembers = [\"app\"]\n").unwrap();
    std::fs::create_dir_all(workspace.path().join("shared")).unwrap();
    std::fs::write(workspace.path().join("shared/tiny.py"), TINY_MODEL).unwrap();
    let app = workspace.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("Cargo.toml"),
        format!("[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n{}", model("").replace("tiny.py:", "../shared/tiny.py:")),
    )
    .unwrap();
    let decls = ptm_build::manifest::read(&app.join("Cargo.toml"), None).unwrap();
    assert!(decls[0].warnings.is_empty(), "{:?}", decls[0].warnings);

    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("w.pth"), b"").unwrap();
    let absolute = outside.path().join("w.pth").display().to_string();
    let project = Project::new(&model(&format!("weights = \"{absolute}\""))).file("tiny.py", TINY_MODEL);
    let warnings = &project.parse().unwrap()[0].warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("`package.metadata.models.tiny.weights`")
            && warnings[0].contains("is absolute")
            && warnings[0].contains("`cargo package` leaves it out"),
        "{warnings:?}"
    );
}

#[test]
fn quantize_skip_takes_module_names_once_and_only_with_quantization() {
    let decls = Project::new(&model("quantize = \"dynamic\"\nquantize_skip = [\"classifier\", \"features.0\"]")).file("tiny.py", TINY_MODEL).parse().unwrap();
    assert_eq!(decls[0].quantize_skip, ["classifier", "features.0"]);

    let text = parse_error(&model("quantize_skip = [\"classifier\"]"));
    assert!(text.contains("`package.metadata.models.tiny.quantize_skip`") && text.contains("1 module(s) with quantize = \"none\""), "{text}");
    assert!(text.contains("remove quantize_skip, or declare the quantization it refines"), "{text}");
    for bad in ["features..0", "head[0]", ""] {
        let text = parse_error(&model(&format!("quantize = \"dynamic\"\nquantize_skip = [\"{bad}\"]")));
        assert!(text.contains("module names as model.named_modules() spells them"), "{bad}: {text}");
    }
    let text = parse_error(&model("quantize = \"dynamic\"\nquantize_skip = [\"head\", \"head\"]"));
    assert!(text.contains("\"head\" a second time"), "{text}");

    // A target that turns quantization off keeps nothing to skip.
    let table = model("quantize = \"dynamic\"\nquantize_skip = [\"head\"]") + "\n[package.metadata.models.tiny.target.x86_64]\nquantize = \"none\"\n";
    let decls = Project::new(&table).file("tiny.py", TINY_MODEL).parse_for("x86_64-unknown-linux-gnu").unwrap();
    assert!(decls[0].quantize_skip.is_empty());
}

#[test]
fn an_error_points_at_the_line_and_column_of_its_key() {
    let text = parse_error(&model("quantize = \"dynamc\""));
    // [package] takes 4 lines, the model table header is line 5, its source line 6.
    let manifest_line = text.lines().next().unwrap();
    assert!(manifest_line.ends_with("Cargo.toml:7:12"), "{text}");
    assert!(text.contains("  |\n7 | quantize = \"dynamc\"\n  |            ^^^^^^^^\n"), "{text}");
    // An unknown key is pointed at itself.
    let text = parse_error(&model("quantise = \"dynamic\""));
    assert!(text.lines().next().unwrap().ends_with("Cargo.toml:7:1") && text.contains("7 | quantise = \"dynamic\"\n  | ^^^^^^^^\n"), "{text}");

    let text = parse_error(&model("").replace("float32", "flaot32"));
    assert!(text.lines().next().unwrap().ends_with(":11:9"), "{text}");
    assert!(text.contains("11 | dtype = \"flaot32\"\n   |         ^^^^^^^^^\n"), "{text}");

    // A missing key points at the table it belongs in.
    let text = error_text(
        Project::new("[package.metadata.models.tiny]\nquantize = \"static\"\nsource = \"tiny.py:build_model\"\n").file("tiny.py", TINY_MODEL).parse(),
    );
    assert!(text.contains("`package.metadata.models.tiny.calibration`") && text.contains(":5:"), "{text}");
}

#[test]
fn every_models_first_mistake_is_reported_at_once() {
    let two = model("quantize = \"dynamc\"") + "\n[package.metadata.models.other]\nsource = \"tiny.py:build_model\"\nexport = \"jit\"\n\n[[package.metadata.models.other.inputs]]\nname = \"x\"\ndtype = \"float32\"\nshape = [1, 4]\n";
    let text = parse_error(&two);
    let tiny = text.find("`package.metadata.models.tiny.quantize`").expect("tiny's error");
    let other = text.find("`package.metadata.models.other.export`").expect("other's error");
    assert!(tiny < other, "in the order of the file: {text}");
    assert!(text.ends_with("ptm: 2 model declarations are wrong; each is named above"), "{text}");
    // A valid model beside a wrong one does not hide the error.
    let one = model("") + "\n[package.metadata.models.other]\nsource = \"tiny.py:build_model\"\nexport = \"jit\"\n";
    let text = parse_error(&one);
    assert!(text.starts_with("ptm: invalid model declaration: `package.metadata.models.other.export`"), "{text}");
}

#[test]
fn a_budget_is_read_with_units_and_per_target_overrides_and_stays_out_of_the_key() {
    let budget =
        "budget = { max_bytes = \"6 MB\", min_top1 = 0.9, max_drift = 0.02 }\n\n[package.metadata.models.tiny.target.aarch64]\nbudget = { max_bytes = 4096 }";
    let project = Project::new(&model(budget)).file("tiny.py", TINY_MODEL);
    let desktop = &project.parse_for("x86_64-unknown-linux-gnu").unwrap()[0];
    assert_eq!((desktop.budget.max_bytes, desktop.budget.min_top1, desktop.budget.max_drift), (Some(6_000_000), Some(0.9), Some(0.02)));
    let phone = &project.parse_for("aarch64-linux-android").unwrap()[0];
    assert_eq!((phone.budget.max_bytes, phone.budget.min_top1), (Some(4096), Some(0.9)), "the target's key replaces the model's, the others stay");
    let plain = Project::new(&model("")).file("tiny.py", TINY_MODEL);
    let key = |project: &Project| ptm_build::tooling::key_of(&project.parse().unwrap()[0], project.path(), "2.11.0", None).unwrap();
    assert_eq!(key(&project), key(&plain), "a budget judges the artifact; it does not change it");
}

#[test]
fn budget_mistakes_name_the_key() {
    let text = parse_error(&model("budget = { max_bytes = \"6 mb\" }"));
    assert!(text.contains("`package.metadata.models.tiny.budget.max_bytes`") && text.contains("\"6 MB\" or \"512 KiB\""), "{text}");
    let text = parse_error(&model("budget = { max_memory = \"1 MB\" }"));
    assert!(
        text.contains("`package.metadata.models.tiny.budget.max_memory`") && text.contains("for a .pte only") && text.contains("ship the model as format = "),
        "{text}"
    );
    let text = parse_error(&model("budget = { min_top1 = 90 }"));
    assert!(text.contains("`package.metadata.models.tiny.budget.min_top1`") && text.contains("between 0 and 1"), "{text}");
    let text = parse_error(&model("budget = { max_byte = 10 }"));
    assert!(text.contains("`package.metadata.models.tiny.budget.max_byte`") && text.contains("did you mean `max_bytes`?"), "{text}");
}
