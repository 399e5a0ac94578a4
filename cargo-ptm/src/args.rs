//! The few flags `cargo ptm` takes: switches and options with a value.

use std::collections::BTreeMap;

/// Parsed flags of one command.
pub struct Args {
    switches: Vec<String>,
    values: BTreeMap<String, Vec<String>>,
}

impl Args {
    /// `words` against the switches and value options a command accepts.
    pub fn parse(words: &[String], switches: &[&str], options: &[&str]) -> Result<Args, String> {
        let mut args = Args { switches: Vec::new(), values: BTreeMap::new() };
        let mut words = words.iter();
        while let Some(word) = words.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_string())),
                None => (word.as_str(), None),
            };
            if switches.contains(&flag) && inline.is_none() {
                args.switches.push(flag.to_string());
            } else if options.contains(&flag) {
                let value = inline.or_else(|| words.next().cloned()).ok_or_else(|| format!("{flag} needs a value"))?;
                args.values.entry(flag.to_string()).or_default().push(value);
            } else {
                let known: Vec<&str> = switches.iter().chain(options).copied().collect();
                return Err(format!("unexpected argument `{word}` (this command takes: {})", if known.is_empty() { "nothing".into() } else { known.join(", ") }));
            }
        }
        Ok(args)
    }

    /// Whether a switch was given.
    pub fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }

    /// The last value of an option.
    pub fn value(&self, option: &str) -> Option<&str> {
        self.values.get(option).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value of a repeatable option.
    pub fn values(&self, option: &str) -> Vec<String> {
        self.values.get(option).cloned().unwrap_or_default()
    }

    /// A number option, or why it is not one.
    pub fn number(&self, option: &str) -> Result<Option<f64>, String> {
        self.value(option).map(|v| v.parse::<f64>().ok().filter(|n| *n >= 0.0).ok_or_else(|| format!("{option} takes a number >= 0, not `{v}`"))).transpose()
    }
}
