//! The shape the code keeps (STYLE.md): no file under `guard/src` or `gate/src` over 500 lines and
//! no function over 80, so that each file stays one idea and each function one step.
//! The function scan is textual: a `fn` line at some indentation runs to the first
//! line that closes it at that same indentation.

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 500;
const MAX_FN_LINES: usize = 80;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The name of the function a line opens, with its indentation.
fn opens_fn(line: &str) -> Option<(usize, &str)> {
    let indent = line.len() - line.trim_start().len();
    let mut rest = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let name = rest.strip_prefix("fn ")?;
    let end = name.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some((indent, &name[..end]))
}

/// Functions longer than `MAX_FN_LINES` in `text`: (name, first line, length).
fn long_functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut long = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((indent, name)) = opens_fn(line) else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            continue; // a declaration without a body
        }
        let close = format!("{}}}", " ".repeat(indent));
        let Some(end) = lines[i..].iter().position(|l| l.trim_end() == close) else {
            continue;
        };
        if end + 1 > MAX_FN_LINES {
            long.push((name.to_owned(), i + 1, end + 1));
        }
    }
    long
}

#[test]
fn no_source_file_is_over_500_lines_and_no_function_over_80() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The guard's sources, and the gate library's (which the guard embeds).
    for (root, at_least) in [
        (manifest.join("src"), 20),
        (manifest.join("../gate/src"), 10),
    ] {
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        files.sort();
        assert!(
            files.len() > at_least,
            "the scan found the sources of {}: {}",
            root.display(),
            files.len()
        );
        let mut problems = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let shown = file.strip_prefix(&root).unwrap().display();
            let count = text.lines().count();
            if count > MAX_FILE_LINES {
                problems.push(format!(
                    "{}/{shown}: {count} lines (at most {MAX_FILE_LINES})",
                    root.display()
                ));
            }
            for (name, line, length) in long_functions(&text) {
                problems.push(format!(
                    "{}/{shown}:{line}: fn {name} is {length} lines (at most {MAX_FN_LINES})",
                    root.display()
                ));
            }
        }
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    }
}

#[test]
fn the_function_scan_finds_a_long_function_and_ignores_declarations() {
    let body = "    let x = 1;\n".repeat(MAX_FN_LINES);
    let text = format!("fn short() {{\n}}\n\nimpl A {{\n    pub(super) fn long(&self) {{\n{body}    }}\n    fn declared(&self);\n}}\n");
    assert_eq!(
        long_functions(&text),
        vec![("long".to_owned(), 5, MAX_FN_LINES + 2)]
    );
}
