//! `format = "pte"`: ExecuTorch programs converted, verified in ExecuTorch's native
//! runtime, cached and reproducible, with real torch and the executorch package.

mod common;
use common::{error_text, Project, TINY_MODEL};

const CONV_MODEL: &str = r#"
import torch
from torch import nn

def build_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()
"#;

const EMBEDDING_MODEL: &str = r#"
import torch
from torch import nn

class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(1000, 32)
        self.classifier = nn.Linear(32, 3)

    def forward(self, ids):
        return self.classifier(self.embedding(ids).mean(dim=1))

def build_model():
    torch.manual_seed(0)
    return Bag().eval()
"#;

fn pte_model(name: &str, file: &str, extra: &str, input: &str) -> String {
    format!(
        "[package.metadata.models.{name}]\nsource = \"{file}:build_model\"\nformat = \"pte\"\n{extra}\n\n[[package.metadata.models.{name}.inputs]]\n{input}\n"
    )
}

fn stages(report: &ptm_build::ModelReport) -> Vec<String> {
    report.drift.iter().map(|d| d.stage.to_string()).collect()
}

#[test]
fn a_float_model_becomes_a_verified_pte() {
    let project =
        Project::new(&pte_model("tiny", "tiny.py", "outputs = [\"scores\"]", "name = \"x\"\ndtype = \"float32\"\nshape = [1, 4]")).file("tiny.py", TINY_MODEL);
    let bundle = project.build().unwrap();
    let report = &bundle.models[0];
    assert_eq!(report.format, "pte");
    assert_eq!(report.artifact, "tiny.pte");
    assert_eq!(report.export, "torch.export");
    assert_eq!(report.engine, "xnnpack");
    assert_eq!(stages(report), ["exported", "executorch"]);
    let native = report.runtime_drift().expect("measured in ExecuTorch's runtime");
    // The 8 examples, and more for top-1 alone until the classifier's output has 200 rows.
    assert_eq!((native.samples, native.outputs[0].top1_rows), (8, Some(200)));
    assert!(native.worst_relative().unwrap() < 1e-5, "{native:?}");
    let bytes = std::fs::read(project.path().join("out/ptm/tiny.pte")).unwrap();
    // The FlatBuffer file identifier of an ExecuTorch program.
    assert_eq!(&bytes[4..8], b"ET12", "{:?}", &bytes[..8]);
    // What the app's build compares with the ExecuTorch its runtime links.
    assert_eq!(report.program_schema.as_deref(), Some("ET12"));
    assert!(report.executorch.as_deref().is_some_and(|v| v.starts_with("1.5.1")), "{:?}", report.executorch);
    assert_eq!((report.delegated_operators, report.undelegated_operators), (Some(1), Some(0)), "the Linear is delegated whole");
    assert!(!report.warnings.iter().any(|w| w.contains("outside the XNNPACK delegate")), "{:?}", report.warnings);
    assert!(report.operators.is_empty(), "the XNNPACK delegate takes the whole Linear: {:?}", report.operators);
    assert!(!project.path().join("out/ptm/tiny.ptl").exists());
}

#[test]
fn static_int8_is_calibrated_and_lowered_to_xnnpack() {
    let project = Project::new(&pte_model(
        "digits",
        "conv.py",
        "quantize = \"static\"\ncalibration = \"samples\"",
        "name = \"pixels\"\ndtype = \"float32\"\nshape = [1, 1, 8, 8]\nrange = [0, 1]",
    ))
    .file("conv.py", CONV_MODEL)
    .file("samples/make.txt", "");
    // Calibration samples as ptm reads them: one tensor per .pt file.
    let python = common::venv_python();
    let status = std::process::Command::new(&python)
        .args(["-c", "import torch, sys\ntorch.manual_seed(1)\nfor i in range(16): torch.save(torch.rand(1, 1, 8, 8), f'{sys.argv[1]}/s{i:02}.pt')"])
        .arg(project.path().join("samples"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(project.path().join("samples/make.txt")).unwrap();
    let bundle = project.build().unwrap();
    let report = &bundle.models[0];
    assert_eq!(stages(report), ["exported", "quantized", "executorch"]);
    assert_eq!(report.calibration_samples, 16);
    let native = report.runtime_drift().unwrap();
    assert_eq!(native.samples, 8 + 16, "every example and calibration sample runs natively");
    assert_eq!(native.outputs[0].top1_rows, Some(200), "and more for top-1 alone: {native:?}");
    assert!(native.worst_relative().unwrap() > 0.0 && native.worst_relative().unwrap() < 0.25, "INT8 drifts a little: {native:?}");
}

#[test]
fn dynamic_int8_quantizes_linears_and_embeddings_to_eight_bits() {
    let ids = "name = \"ids\"\ndtype = \"int64\"\nshape = [1, 16]\nrange = [0, 1000]";
    let float_project = Project::new(&pte_model("bag", "bag.py", "", ids)).file("bag.py", EMBEDDING_MODEL);
    let int8_project = Project::new(&pte_model("bag", "bag.py", "quantize = \"dynamic\"", ids)).file("bag.py", EMBEDDING_MODEL);
    let (float, int8) = (float_project.build().unwrap(), int8_project.build().unwrap());
    let size = |bundle: &ptm_build::Bundle| bundle.models[0].sizes.iter().find(|s| s.stage == "pte").unwrap().bytes;
    let artifact = |project: &Project, bundle: &ptm_build::Bundle| std::fs::read(project.path().join("out/ptm").join(&bundle.models[0].artifact)).unwrap();
    assert_eq!(size(&int8), artifact(&int8_project, &int8).len() as u64, "the size is the artifact's, as it ships");
    // The program alone, without ptm's identity record (its text length stands 16 bytes
    // from the end): 1000 x 32 float embedding = 128 kB; at 8 bits a quarter of that.
    let program = |bytes: Vec<u8>| bytes.len() - 16 - u32::from_le_bytes(bytes[bytes.len() - 16..bytes.len() - 12].try_into().unwrap()) as usize;
    let (int8_program, float_program) = (program(artifact(&int8_project, &int8)), program(artifact(&float_project, &float)));
    assert!(int8_program * 3 < float_program, "{int8_program} vs {float_program}");
    assert!(int8.models[0].operators.iter().any(|op| op.contains("embedding_byte")), "{:?}", int8.models[0].operators);
    assert!(int8.models[0].runtime_drift().unwrap().outputs[0].top1.unwrap() >= 0.9);
}

#[test]
fn the_same_declaration_gives_the_same_bytes_in_another_directory_and_from_the_cache() {
    let table = pte_model("tiny", "tiny.py", "quantize = \"dynamic\"", "name = \"x\"\ndtype = \"float32\"\nshape = [1, 4]");
    let first = Project::new(&table).file("tiny.py", TINY_MODEL);
    let second = Project::new(&table).file("tiny.py", TINY_MODEL);
    let a = first.build().unwrap();
    let b = second.build().unwrap();
    assert_eq!(a.models[0].artifact_sha256, b.models[0].artifact_sha256);
    assert_eq!(a.models[0].cache_key, b.models[0].cache_key);
    // From the cache: the entry holds a model.pte, verified by its hash.
    let again = first.build().unwrap();
    assert_eq!(again.models[0].artifact_sha256, a.models[0].artifact_sha256);
    let entry = first.path().join("cache/v1").join(&a.models[0].cache_key);
    assert!(entry.join("model.pte").is_file() && !entry.join("model.ptl").exists());
}

#[test]
fn keys_of_the_lite_interpreter_are_errors_for_a_pte() {
    for (key, why) in [
        ("runtime = \"1.13\"", "Lite Interpreter release"),
        ("export = \"trace\"", "torch.export"),
        ("optimize_blocklist = [\"remove_dropout\"]", "optimize_for_mobile"),
        ("engine = \"fbgemm\"", "XNNPACK"),
    ] {
        let project = Project::new(&pte_model("tiny", "tiny.py", key, "name = \"x\"\ndtype = \"float32\"\nshape = [1, 4]")).file("tiny.py", TINY_MODEL);
        let text = error_text(project.parse());
        let name = key.split(' ').next().unwrap();
        assert!(text.contains(&format!("package.metadata.models.tiny.{name}")), "{text}");
        assert!(text.contains("format = \"pte\""), "{text}");
        assert!(text.contains(why), "{text}");
    }
}

#[test]
fn a_target_table_chooses_the_format_and_the_key_follows() {
    let project = Project::new(
        "[package.metadata.models.tiny]\nsource = \"tiny.py:build_model\"\n\n[package.metadata.models.tiny.target.aarch64]\nformat = \"pte\"\n\n[[package.metadata.models.tiny.inputs]]\nname = \"x\"\ndtype = \"float32\"\nshape = [1, 4]\n",
    )
    .file("tiny.py", TINY_MODEL);
    let arm = project.parse_for("aarch64-linux-android").unwrap();
    let x86 = project.parse_for("x86_64-unknown-linux-gnu").unwrap();
    assert_eq!((arm[0].format, x86[0].format), (ptm_build::manifest::Format::Pte, ptm_build::manifest::Format::Ptl));
    let key = |decl: &ptm_build::manifest::ModelDecl| ptm_build::tooling::key_of(decl, project.path(), "2.11.0", Some("1.5.1+cpu")).unwrap();
    assert_ne!(key(&arm[0]), key(&x86[0]));
}

#[test]
fn a_dynamic_dimension_exports_as_a_dim() {
    let project = Project::new(&pte_model("tiny", "tiny.py", "quantize = \"dynamic\"", "name = \"x\"\ndtype = \"float32\"\nshape = [\"batch=3\", 4]"))
        .file("tiny.py", TINY_MODEL);
    let bundle = project.build().unwrap();
    let report = &bundle.models[0];
    assert!(matches!(report.inputs[0].shape[0], ptm_report::Dim::Dynamic { .. }), "{:?}", report.inputs[0].shape);
    // The output follows the input's dimension, as for a .ptl.
    assert!(matches!(&report.outputs[0].shape[0], ptm_report::Dim::Dynamic { name, example: 3, .. } if name == "batch"), "{:?}", report.outputs[0].shape);
}

const BFLOAT16_MODEL: &str = r#"
import torch
from torch import nn

class Half(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 2.0).to(torch.bfloat16)

def build_model():
    return Half()
"#;

#[test]
fn an_output_of_an_element_type_the_runtime_cannot_hold_is_refused_in_both_formats() {
    let input = "name = \"x\"\ndtype = \"float32\"\nshape = [1, 4]";
    for format in ["pte", "ptl"] {
        let table = pte_model("half", "half.py", "outputs = [\"y\"]", input).replace("format = \"pte\"", &format!("format = \"{format}\""));
        let error = error_text(Project::new(&table).file("half.py", BFLOAT16_MODEL).build());
        // Named before anything is verified: a .pte's bfloat16 output was read back as float16.
        assert!(error.contains("output `y` holds bfloat16 elements, which the runtime cannot hand to Rust"), "{format}: {error}");
        assert!(error.contains(".float()"), "{format}: {error}");
    }
}

/// GroupNorm, which XNNPACK does not take (as Wav2Vec2's feature encoder has it), around
/// one Linear it does.
const GROUP_NORM_MODEL: &str = r#"
import torch
from torch import nn

class Normed(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.GroupNorm(2, 8)
        self.second = nn.GroupNorm(4, 8)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(self.second(self.first(x)))

def build_model():
    torch.manual_seed(0)
    return Normed().eval()
"#;

#[test]
fn a_graph_mostly_outside_the_delegate_is_a_warning_naming_its_operators() {
    let project =
        Project::new(&pte_model("normed", "normed.py", "", "name = \"x\"\ndtype = \"float32\"\nshape = [1, 8, 16]")).file("normed.py", GROUP_NORM_MODEL);
    let report = project.build().unwrap().models.remove(0);
    assert_eq!(report.undelegated_operators, Some(2), "{report:?}");
    assert!(report.delegated_operators.is_some_and(|n| n >= 1), "{report:?}");
    let warning = report.warnings.iter().find(|w| w.contains("outside the XNNPACK delegate")).unwrap_or_else(|| panic!("{:?}", report.warnings));
    assert!(warning.contains("aten.native_group_norm.default (2)") && warning.contains("format = \"ptl\""), "{warning}");
}

/// A table of 64 positions, sliced to the number of tokens as a transformer's position
/// embeddings are: any number of tokens up to 64.
const POSITIONS_MODEL: &str = r#"
import torch
from torch import nn

class Positions(nn.Module):
    def __init__(self):
        super().__init__()
        self.positions = nn.Parameter(torch.randn(64, 8))
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(x + self.positions[: x.shape[1]])

def build_model():
    torch.manual_seed(0)
    return Positions().eval()
"#;

/// Two bidirectional LSTM layers over the tokens, then a Linear per token.
const LSTM_MODEL: &str = r#"
import torch
from torch import nn

class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.rnn(x)[0])

def build_model():
    torch.manual_seed(0)
    return Tagger().eval()
"#;

/// A GRU encoder over `src` whose final state starts a GRU decoder over `tgt`.
const SEQ2SEQ_MODEL: &str = r#"
import torch
from torch import nn

class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.GRU(8, 16, batch_first=True)
        self.decoder = nn.GRU(6, 16, batch_first=True)
        self.out = nn.Linear(16, 5)

    def forward(self, src, tgt):
        _, state = self.encoder(src)
        steps, _ = self.decoder(tgt, state)
        return self.out(steps)

def build_model():
    torch.manual_seed(0)
    return Seq2Seq().eval()
"#;

/// A recurrent cell called once per step in Python: torch.export unrolls the loop.
const LOOP_MODEL: &str = r#"
import torch
from torch import nn

class Loop(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = nn.Linear(8 + 16, 16)

    def forward(self, x):
        h = x.new_zeros(x.shape[0], 16)
        for t in range(x.shape[1]):
            h = torch.tanh(self.cell(torch.cat([x[:, t], h], dim=1)))
        return h

def build_model():
    torch.manual_seed(0)
    return Loop().eval()
"#;

#[test]
fn a_ranged_dimension_is_verified_across_its_range_in_executorch() {
    let project =
        Project::new(&pte_model("tiny", "tiny.py", "", "name = \"x\"\ndtype = \"float32\"\nshape = [\"batch=3:1..8\", 4]")).file("tiny.py", TINY_MODEL);
    let bundle = project.build().unwrap();
    let report = &bundle.models[0];
    assert_eq!(report.inputs[0].shape[0].range(), Some((1, 8)), "{:?}", report.inputs[0].shape);
    // The output follows the input's dimension, range included.
    assert_eq!(report.outputs[0].shape[0].range(), Some((1, 8)), "{:?}", report.outputs[0].shape);
    // The 8 examples and batch at 1, 4 and 8 (ExecuTorch planned its memory for 8); then,
    // for top-1 alone, samples at the example size until the classifier's output has
    // 200 rows (counting 3 rows a sample, as at the example size).
    let drift = report.runtime_drift().unwrap();
    let extra = (200u64 - 3 * 11).div_ceil(3);
    assert_eq!((drift.samples, drift.outputs[0].top1_rows), (11, Some(8 * 3 + 1 + 4 + 8 + 3 * extra)), "{drift:?}");
}

#[test]
fn a_dimension_the_model_limits_needs_its_range() {
    let table = |shape: &str| pte_model("reader", "reader.py", "", &format!("name = \"x\"\ndtype = \"float32\"\nshape = {shape}"));
    let text = error_text(Project::new(&table("[1, \"tokens=32\", 8]")).file("reader.py", POSITIONS_MODEL).build());
    assert!(text.contains("model `reader`: torch.export could not keep `tokens` of input `x` (dimension 1) dynamic"), "{text}");
    assert!(text.contains("torch: Not all values of tokens") && text.contains("<= 64"), "{text}");
    assert!(text.contains("\"tokens=32:1..64\" in package.metadata.models.reader.inputs[0].shape"), "{text}");
    let bundle = Project::new(&table("[1, \"tokens=32:1..64\", 8]")).file("reader.py", POSITIONS_MODEL).build().unwrap();
    let report = &bundle.models[0];
    assert_eq!(report.inputs[0].shape[1].range(), Some((1, 64)));
    // The 8 examples, and tokens at 1, 32 (the middle is the example) and 64.
    assert_eq!(report.runtime_drift().unwrap().samples, 10);
}

#[test]
fn a_loop_over_a_dimension_fixes_it_for_torch_export_and_the_error_says_what_to_do() {
    // torch.export unrolls a Python loop over the steps, with or without a range.
    for shape in ["[1, \"tokens=32\", 8]", "[1, \"tokens=32:1..128\", 8]"] {
        let table = pte_model("looped", "looped.py", "", &format!("name = \"x\"\ndtype = \"float32\"\nshape = {shape}"));
        let text = error_text(Project::new(&table).file("looped.py", LOOP_MODEL).build());
        assert!(text.contains("model `looped`: torch.export could not keep `tokens` of input `x` (dimension 1) dynamic"), "{text}");
        assert!(text.contains("specialized it to be a constant (32)"), "{text}");
        assert!(text.contains("declare it fixed (32) in package.metadata.models.looped.inputs[0].shape") && text.contains("format = \"ptl\""), "{text}");
    }
}

const SQUEEZENET_MODEL: &str = r#"
import torch
import torchvision

def build_model():
    torch.manual_seed(0)
    return torchvision.models.squeezenet1_1(num_classes=10).eval()
"#;

#[test]
fn a_cnn_takes_a_dynamic_resolution_in_the_steps_its_pooling_allows() {
    let table = |height: &str, width: &str| {
        let input = format!("name = \"x\"\ndtype = \"float32\"\nshape = [1, 3, \"{height}\", \"{width}\"]");
        pte_model("squeeze", "squeeze.py", "", &input)
    };
    // torchvision's ceil-mode max pooling keeps only some sizes: torch.export's guard
    // names them, and the error suggests the multiples that satisfy it.
    let text = error_text(Project::new(&table("height=64:32..128", "width=64:32..128")).file("squeeze.py", SQUEEZENET_MODEL).build());
    assert!(text.contains("model `squeeze`: torch.export could not keep `height` of input `x` (dimension 2) dynamic"), "{text}");
    assert!(text.contains("satisfy the generated guard") && text.contains("package.metadata.models.squeeze.inputs[0].shape"), "{text}");
    let suggested = text.split('"').find(|part| part.starts_with("height=") && part.contains(" step ")).unwrap_or_else(|| panic!("no step suggested: {text}"));
    let width = suggested.replace("height", "width");
    let bundle = Project::new(&table(suggested, &width)).file("squeeze.py", SQUEEZENET_MODEL).build().unwrap_or_else(|e| panic!("{suggested}: {e}"));
    let report = &bundle.models[0];
    let step = report.inputs[0].shape[2].step();
    assert!(step > 1 && report.inputs[0].shape[3].step() == step, "{:?}", report.inputs[0].shape);
    let (low, high) = report.inputs[0].shape[2].range().unwrap();
    // ExecuTorch ran each dimension at its smallest, middle and largest allowed size,
    // beside the examples, and matched eager.
    let drift = report.runtime_drift().unwrap();
    let sizes: std::collections::BTreeSet<u64> =
        [low, (low + high) / 2 / step * step, high].into_iter().filter(|&s| s != report.inputs[0].shape[2].example()).collect();
    assert_eq!(drift.samples as usize, 8 + 2 * sizes.len(), "{drift:?}");
    // Top-1 counts more rows, as many as 10 s of forwards allow, up to 200.
    let rows = drift.outputs[0].top1_rows.unwrap();
    assert!(rows > u64::from(drift.samples) && rows <= 200, "{drift:?}");
    assert!(drift.outputs[0].max_abs < 1e-3, "{drift:?}");
}

/// A Hugging Face BERT as transformers builds it, no wrapper: tiny, random weights, a
/// vocabulary large enough that its embedding dominates the float size, as a real
/// BERT's does.
const HF_BERT_MODEL: &str = r#"
import torch
from transformers import BertConfig, BertForSequenceClassification

def build_model():
    torch.manual_seed(11)
    config = BertConfig(vocab_size=2000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3)
    return BertForSequenceClassification(config)
"#;

#[test]
fn a_raw_hugging_face_bert_becomes_a_verified_dynamic_int8_pte_with_per_layer_figures() {
    // Its attention mask indexes with `arange(n) + 0`, which XNNPACK's quantizer once turned float.
    let inputs = "name = \"input_ids\"\ndtype = \"int64\"\nshape = [1, 16]\nrange = [0, 2000]\n\n[[package.metadata.models.bert.inputs]]\nname = \"attention_mask\"\ndtype = \"int64\"\nshape = [1, 16]\nrange = [1, 2]";
    let project = Project::new(&pte_model("bert", "hf.py", "quantize = \"dynamic\"\noutputs = [\"logits\"]", inputs)).file("hf.py", HF_BERT_MODEL);
    let bundle = project.build().unwrap();
    let report = &bundle.models[0];
    assert_eq!(stages(report), ["exported", "quantized", "executorch"]);
    let native = report.runtime_drift().unwrap();
    // Top-1 over 200 rows, where one flip moves it by 0.005.
    assert!(native.worst_relative().unwrap() < 0.05 && native.worst_top1().unwrap() >= 0.95, "as close as its .ptl: {native:?}");
    assert_eq!(native.outputs[0].top1_rows, Some(200), "{native:?}");
    // INT8 at about a quarter of the float parameters (the embeddings at 8 bits too).
    let size = |stage: &str| report.sizes.iter().find(|s| s.stage == stage).unwrap().bytes;
    assert!(size("pte") * 2 < size("source"), "{:?}", report.sizes);
    assert!(report.operators.iter().any(|op| op.contains("embedding_byte")), "{:?}", report.operators);

    // Every Linear and embedding, named as quantize_skip names them, worst first.
    let layers = &report.layers;
    assert_eq!(report.layers_unavailable, None);
    assert_eq!(layers.len(), 2 * 6 + 2 + 3, "{layers:?}");
    for (name, kind) in [("classifier", "Linear"), ("bert.encoder.layer.1.attention.self.query", "Linear"), ("bert.embeddings.word_embeddings", "Embedding")] {
        assert!(layers.iter().any(|l| l.name == name && l.kind == kind), "{name}: {layers:?}");
    }
    assert!(layers.windows(2).all(|w| w[0].sqnr_db <= w[1].sqnr_db), "worst first: {layers:?}");
    assert!(layers.iter().all(|l| l.sqnr_db > 20.0 && l.relative > 0.0), "{layers:?}");
    let written = std::fs::read_to_string(project.path().join("out/ptm/models.json")).unwrap();
    assert_eq!(ptm_report::Bundle::from_json(&written).unwrap().models[0].layers, *layers, "models.json carries them");
}

/// A float64 Linear between two float32 ones: convert_pt2e cannot quantize it.
const FLOAT64_LAYER_MODEL: &str = r#"
import torch
from torch import nn

class Scorer(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(8, 16)
        self.score = nn.Linear(16, 16).double()
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.score(self.encoder(x).double()).float())

def build_model():
    torch.manual_seed(0)
    return Scorer().eval()
"#;

#[test]
fn a_layer_int8_cannot_take_is_named_and_quantize_skip_keeps_it_float() {
    let input = "name = \"x\"\ndtype = \"float32\"\nshape = [1, 8]";
    let text = error_text(Project::new(&pte_model("scorer", "scorer.py", "quantize = \"dynamic\"", input)).file("scorer.py", FLOAT64_LAYER_MODEL).build());
    assert!(text.contains("model `scorer` failed at stage `quantize`"), "{text}");
    assert!(text.contains("dynamic INT8 for XNNPACK failed in layer `score` (Linear)"), "{text}");
    assert!(text.contains("quantize_skip = [\"score\"] in package.metadata.models.scorer.quantize_skip"), "{text}");

    let skipped =
        Project::new(&pte_model("scorer", "scorer.py", "quantize = \"dynamic\"\nquantize_skip = [\"score\"]", input)).file("scorer.py", FLOAT64_LAYER_MODEL);
    let report = skipped.build().unwrap().models.remove(0);
    let names: std::collections::BTreeSet<&str> = report.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["encoder", "head"].into(), "the skipped layer stays float: {:?}", report.layers);
    assert!(report.runtime_drift().unwrap().worst_relative().unwrap() < 0.05);
}

#[test]
fn an_lstm_keeps_its_length_dynamic_as_a_scan_loop() {
    let table = pte_model("tagger", "tagger.py", "", "name = \"x\"\ndtype = \"float32\"\nshape = [1, \"tokens=32:2..128\", 8]");
    let bundle = Project::new(&table).file("tagger.py", LSTM_MODEL).build().unwrap();
    let report = &bundle.models[0];
    assert_eq!(report.inputs[0].shape[1].range(), Some((2, 128)), "{:?}", report.inputs[0].shape);
    assert_eq!(report.outputs[0].shape[1].range(), Some((2, 128)), "{:?}", report.outputs[0].shape);
    // The 8 examples and tokens at 2, 65 and 128, each run in ExecuTorch's runtime
    // against the nn.LSTM itself.
    let native = report.runtime_drift().unwrap();
    assert_eq!(native.samples, 11);
    assert!(native.worst_relative().unwrap() < 1e-5, "{native:?}");
    let warning = report.warnings.iter().find(|w| w.contains("scan loop")).unwrap_or_else(|| panic!("{:?}", report.warnings));
    assert!(warning.starts_with("nn.LSTM `rnn` runs as a scan loop over its steps so that its length stays dynamic"), "{warning}");
    // The input projections and the head are delegated; the loops are not.
    assert!(report.delegated_operators.is_some_and(|n| n >= 5), "{report:?}");
    assert!(report.operators.iter().any(|op| op.contains("sigmoid")), "{:?}", report.operators);
}

#[test]
fn a_gru_encoder_and_decoder_keep_two_dynamic_lengths_with_static_int8() {
    let table = pte_model(
        "seq2seq",
        "seq2seq.py",
        "quantize = \"static\"\ncalibration = \"samples\"",
        "name = \"src\"\ndtype = \"float32\"\nshape = [1, \"src=16:2..64\", 8]",
    ) + "\n[[package.metadata.models.seq2seq.inputs]]\nname = \"tgt\"\ndtype = \"float32\"\nshape = [1, \"tgt=8:2..32\", 6]\n";
    let project = Project::new(&table).file("seq2seq.py", SEQ2SEQ_MODEL).file("samples/make.txt", "");
    // Calibration samples of other lengths, keyed by input name.
    let status = std::process::Command::new(common::venv_python())
        .args(["-c", "import torch, sys\ntorch.manual_seed(1)\nfor i, (s, t) in enumerate([(3, 30), (10, 4), (40, 12), (64, 2), (20, 20), (7, 9), (50, 31), (16, 8)]):\n    torch.save({'src': torch.randn(1, s, 8), 'tgt': torch.randn(1, t, 6)}, f'{sys.argv[1]}/s{i}.pt')"])
        .arg(project.path().join("samples"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(project.path().join("samples/make.txt")).unwrap();
    let bundle = project.build().unwrap();
    let report = &bundle.models[0];
    assert_eq!(stages(report), ["exported", "quantized", "executorch"]);
    assert_eq!(report.outputs[0].shape[1].range(), Some((2, 32)), "{:?}", report.outputs[0].shape);
    let exported = report.drift.iter().find(|d| d.stage == "exported").unwrap();
    assert!(exported.worst_relative().unwrap() < 1e-5, "the scan loops compute what the GRUs do: {exported:?}");
    // The 8 examples, the 8 calibration samples, src at 2, 33 and 64, tgt at 2, 17 and 32.
    let native = report.runtime_drift().unwrap();
    assert_eq!(native.samples, 22);
    // INT8 projections and head around float loops.
    assert!(native.worst_relative().unwrap() < 0.25, "INT8 drifts a little: {:?}", report.drift);
    assert!(report.warnings.iter().any(|w| w.starts_with("nn.GRU `encoder` and nn.GRU `decoder` run as scan loops over their steps")), "{:?}", report.warnings);
}

#[test]
fn a_model_over_its_budget_fails_naming_the_key_and_a_raised_budget_judges_the_cached_artifact() {
    let declare = |budget: &str| {
        pte_model("tiny", "tiny.py", &format!("outputs = [\"scores\"]\nbudget = {{ {budget} }}"), "name = \"x\"\ndtype = \"float32\"\nshape = [1, 4]")
    };
    let project = Project::new(&declare("max_bytes = 100, max_memory = \"1 MB\"")).file("tiny.py", TINY_MODEL);
    let text = error_text(project.build());
    assert!(text.contains("model `tiny` is over its budget"), "{text}");
    assert!(text.contains("`package.metadata.models.tiny.budget.max_bytes`: the figure is ") && text.contains(" kB ("), "{text}");
    assert!(text.contains("bytes), over the budget of 100 bytes") && text.contains("raise the budget"), "{text}");
    assert!(!text.contains("budget.max_memory"), "the planned memory is within its budget: {text}");

    // The artifact was cached: a raised budget builds from the cache, and records both.
    std::fs::write(project.manifest(), format!("[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n{}", declare("max_bytes = \"1 MB\", max_memory = \"1 MB\"")))
        .unwrap();
    let outcome = project.builder(&common::venv_python()).build().unwrap();
    assert_eq!(outcome.models[0].origin, ptm_build::Origin::Cache);
    let report = &outcome.bundle.models[0];
    let planned = report.planned_memory.expect("a .pte records the memory its plan reserves");
    assert!(planned > 0 && planned < 1_000_000, "{planned}");
    assert_eq!((report.budget.max_bytes, report.budget.max_memory), (Some(1_000_000), Some(1_000_000)));
    assert!(report.budget_checks().iter().all(|check| check.passed()), "{:?}", report.budget_checks());

    // A target table's limit is named by that table's key.
    let manifest = std::fs::read_to_string(project.manifest()).unwrap();
    std::fs::write(project.manifest(), format!("{manifest}\n[package.metadata.models.tiny.target.x86_64-unknown-linux-gnu]\nbudget = {{ max_bytes = 100 }}\n"))
        .unwrap();
    let error = project.builder(&common::venv_python()).target("x86_64-unknown-linux-gnu").bundle().unwrap_err().to_string();
    assert!(error.contains("`package.metadata.models.tiny.target.x86_64-unknown-linux-gnu.budget.max_bytes`: the figure is "), "{error}");
}
