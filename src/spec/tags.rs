//! YAML tags in a job file are refused: serde_yaml ignores a tag on a scalar
//! (`!!python/object:os.system "ls"` reads as the string `ls`), so a tag would mean nothing
//! here while it reads as meaning something. The plain core tags that only say what a scalar
//! already is (`!!str`, `!!int`, ...) are allowed.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::Marker;

const CORE: &str = "tag:yaml.org,2002:";
const ALLOWED: [&str; 7] = ["str", "int", "float", "bool", "null", "seq", "map"];

/// Where the first refused tag stands (line, column, as written), if any.
pub(super) fn first_refused_tag(text: &str) -> Option<(usize, usize, String)> {
    // Most job files hold no `!` at all: then there is no tag, and no second parse.
    if !text.contains('!') {
        return None;
    }
    struct Finder(Option<(usize, usize, String)>);
    impl MarkedEventReceiver for Finder {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            if self.0.is_some() {
                return;
            }
            let tag = match &ev {
                Event::Scalar(_, _, _, tag) => tag.as_ref(),
                Event::SequenceStart(_, tag) | Event::MappingStart(_, tag) => tag.as_ref(),
                _ => None,
            };
            if let Some(tag) = tag
                && refused(tag)
            {
                self.0 = Some((mark.line(), mark.col() + 1, written(tag)));
            }
        }
    }
    let mut finder = Finder(None);
    let _ = Parser::new_from_str(text).load(&mut finder, false);
    finder.0
}

fn refused(tag: &Tag) -> bool {
    !(tag.handle == CORE && ALLOWED.contains(&tag.suffix.as_str()))
}

fn written(tag: &Tag) -> String {
    match tag.handle.as_str() {
        CORE => format!("!!{}", tag.suffix),
        h => format!("{h}{}", tag.suffix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_tags_are_found_and_core_ones_allowed() {
        let t = "jobs:\n  - name: a\n    command: !!python/object:os.system \"ls\"\n";
        let (line, _, tag) = first_refused_tag(t).unwrap();
        assert_eq!((line, tag.as_str()), (3, "!!python/object:os.system"));
        assert!(first_refused_tag("jobs:\n  - !!str echo hi!\n").is_none());
        assert!(first_refused_tag("jobs:\n  - !custom x\n").is_some());
        assert!(first_refused_tag("a: !!binary aGk=\n").is_some());
    }
}
