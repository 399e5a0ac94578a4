//! Where a key of a Cargo.toml is: line, column and the line itself, so that a
//! declaration error points at it as rustc and cargo do.

use std::ops::Range;
use toml_edit::{ImDocument, TableLike};

pub use crate::error::Location;

/// The key `package.metadata.models.tiny.inputs[0].dtype` in `text`: its value (or, with
/// `at_key`, the key itself) when it is there, else the nearest table around where it
/// belongs; None for text that does not parse or keys that are not paths (`(the file)`).
pub fn locate(text: &str, key: &str, at_key: bool) -> Option<Location> {
    let document = ImDocument::parse(text).ok()?;
    let mut table: &dyn TableLike = document.as_table();
    let mut span: Option<Range<usize>> = None;
    for segment in key.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some((found_key, item)) = table.get_key_value(name) else { break };
        let value = item.as_value().filter(|_| !at_key && index.is_none()).and_then(|v| v.span());
        span = value.or_else(|| found_key.span()).or_else(|| item.span()).or(span);
        let next: Option<&dyn TableLike> = match index {
            Some(index) => match item.as_array_of_tables().and_then(|tables| tables.get(index)) {
                Some(element) => {
                    span = element.span().or(span);
                    Some(element)
                }
                None => None,
            },
            None => item.as_table_like(),
        };
        match next {
            Some(next) => table = next,
            None => break,
        }
    }
    at(text, span?)
}

/// The location of byte range `span` of `text`.
pub(super) fn at(text: &str, span: Range<usize>) -> Option<Location> {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_text = text[line_start..line_end].trim_end_matches('\r');
    let column = text[line_start..start].chars().count() + 1;
    let width = text[start..span.end.min(line_end).max(start)].chars().count().max(1);
    Some(Location { line: text[..start].matches('\n').count() + 1, column, text: line_text.to_string(), width })
}
