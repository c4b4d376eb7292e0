//! Printing management responses: a list of flat objects as an aligned table (columns in
//! key order), a single object as `key: value` lines.

use serde_json::Value;

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Render `data` for a terminal.
pub fn render(data: &Value) -> String {
    match data {
        Value::Array(rows) if rows.is_empty() => "(none)\n".into(),
        Value::Array(rows) => {
            let mut cols: Vec<String> = Vec::new();
            for r in rows {
                if let Value::Object(m) = r {
                    for k in m.keys() {
                        if !cols.contains(k) {
                            cols.push(k.clone());
                        }
                    }
                }
            }
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    cols.iter()
                        .map(|c| r.get(c).map(cell).unwrap_or_else(|| "-".into()))
                        .collect()
                })
                .collect();
            let widths: Vec<usize> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    cells
                        .iter()
                        .map(|r| r[i].chars().count())
                        .chain([c.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let numeric: Vec<bool> = cols
                .iter()
                .map(|c| {
                    rows.iter()
                        .all(|r| matches!(r.get(c), Some(Value::Number(_)) | None))
                })
                .collect();
            let mut out = String::new();
            let line = |vals: &[String], out: &mut String, header: bool| {
                let parts: Vec<String> = vals
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if numeric[i] && !header {
                            format!("{v:>w$}", w = widths[i])
                        } else {
                            format!("{v:<w$}", w = widths[i])
                        }
                    })
                    .collect();
                out.push_str(parts.join("  ").trim_end());
                out.push('\n');
            };
            line(
                &cols.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>(),
                &mut out,
                true,
            );
            for r in &cells {
                line(r, &mut out, false);
            }
            out
        }
        Value::Object(m) => {
            let w = m.keys().map(|k| k.len()).max().unwrap_or(0);
            m.iter()
                .map(|(k, v)| format!("{k:<w$}  {}\n", cell(v)))
                .collect()
        }
        Value::Null => String::new(),
        other => format!("{}\n", cell(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_table() {
        let v = serde_json::json!([
            {"name": "wan", "rx": 10, "addr": ["1.1.1.1/24", "::1/64"]},
            {"name": "lan-long", "rx": 1234567},
        ]);
        let s = render(&v);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "NAME      RX       ADDR");
        assert_eq!(lines[1], "wan            10  1.1.1.1/24,::1/64");
        assert_eq!(lines[2], "lan-long  1234567  -");
        assert_eq!(render(&serde_json::json!([])), "(none)\n");
        assert_eq!(
            render(&serde_json::json!({"a": 1, "long": "x"})),
            "a     1\nlong  x\n"
        );
    }
}
