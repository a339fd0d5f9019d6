//! Request parameters the way Rack reads them: query string and body merged.
//!
//! Real clients send parameters in a POST's query string, as a body with no Content-Type
//! (parsed as a form), as multipart, as urlencoded forms with `recipient[]=`, or as JSON.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{Request, header};
use bytes::Bytes;
use serde_json::Value;

/// Why the parameters could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ParamsError {
    /// The body claimed to be JSON but is not.
    #[error("malformed JSON body")]
    MalformedJson,
    /// The multipart body could not be parsed.
    #[error("malformed multipart body")]
    MalformedMultipart,
}

/// Merged parameters: query pairs first, then body pairs (later ones win, as in Rack).
#[derive(Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
    json: Option<Value>,
}

/// Shows parameter names only: values include secrets and passphrases.
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params")
            .field(
                "names",
                &self.pairs.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("json", &self.json.is_some())
            .finish()
    }
}

impl Params {
    /// Reads the query string and the body according to its Content-Type.
    pub(crate) async fn parse(
        query: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Params, ParamsError> {
        let mut params = Params::default();
        if let Some(q) = query {
            params.extend_form(q.as_bytes());
        }
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase());
        match media.as_deref() {
            // Rack parses a body without a Content-Type as a form.
            None | Some("" | "application/x-www-form-urlencoded") => params.extend_form(&body),
            Some("multipart/form-data") => {
                params
                    .extend_multipart(content_type.unwrap_or_default(), body)
                    .await?;
            }
            Some(m) if m == "application/json" || m.ends_with("+json") => {
                if !body.iter().all(u8::is_ascii_whitespace) {
                    let value: Value =
                        serde_json::from_slice(&body).map_err(|_| ParamsError::MalformedJson)?;
                    params.extend_json(value);
                }
            }
            // Any other type: the body is not parameters.
            Some(_) => {}
        }
        Ok(params)
    }

    fn extend_form(&mut self, raw: &[u8]) {
        self.pairs.extend(
            url::form_urlencoded::parse(raw).map(|(k, v)| (k.into_owned(), v.into_owned())),
        );
    }

    async fn extend_multipart(
        &mut self,
        content_type: &str,
        body: Bytes,
    ) -> Result<(), ParamsError> {
        let req = Request::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .map_err(|_| ParamsError::MalformedMultipart)?;
        let mut multipart = Multipart::from_request(req, &())
            .await
            .map_err(|_| ParamsError::MalformedMultipart)?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|_| ParamsError::MalformedMultipart)?
        {
            let Some(name) = field.name().map(str::to_owned) else {
                continue;
            };
            let text = field
                .text()
                .await
                .map_err(|_| ParamsError::MalformedMultipart)?;
            self.pairs.push((name, text));
        }
        Ok(())
    }

    fn extend_json(&mut self, value: Value) {
        if let Value::Object(map) = &value {
            for (k, v) in map {
                match v {
                    Value::Array(items) => {
                        for item in items {
                            if let Some(s) = scalar(item) {
                                self.pairs.push((format!("{k}[]"), s));
                            }
                        }
                    }
                    other => {
                        if let Some(s) = scalar(other) {
                            self.pairs.push((k.clone(), s));
                        }
                    }
                }
            }
        }
        self.json = Some(value);
    }

    /// The last value given for `name` (`name` or, for nested form keys, `outer[inner]`).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a list parameter: `name[]=` entries, or the plain `name` value.
    pub(crate) fn get_all(&self, name: &str) -> Vec<String> {
        let list = format!("{name}[]");
        let items: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| *k == list)
            .map(|(_, v)| v.clone())
            .collect();
        if !items.is_empty() {
            return items;
        }
        self.get(name)
            .map(|v| vec![v.to_owned()])
            .unwrap_or_default()
    }

    /// A field of a nested object (`{"secret":{"ttl":..}}` in JSON, `secret[ttl]=` in forms).
    pub(crate) fn nested(&self, outer: &str, field: &str) -> Option<String> {
        if let Some(v) = self
            .json
            .as_ref()
            .and_then(|j| j.get(outer))
            .and_then(|o| o.get(field))
        {
            return scalar(v);
        }
        self.get(&format!("{outer}[{field}]")).map(str::to_owned)
    }

    /// A list field of a nested object (`{"secret":{"recipient":[..]}}`, `secret[recipient][]=`).
    pub(crate) fn nested_all(&self, outer: &str, field: &str) -> Vec<String> {
        if let Some(v) = self
            .json
            .as_ref()
            .and_then(|j| j.get(outer))
            .and_then(|o| o.get(field))
        {
            return match v {
                Value::Array(items) => items.iter().filter_map(scalar).collect(),
                other => scalar(other).into_iter().collect(),
            };
        }
        self.get_all(&format!("{outer}[{field}]"))
    }

    /// Whether `outer` was sent as a plain value where an object is expected
    /// (`{"secret":"x"}` or `secret=x`), which v2 rejects as an incorrect payload.
    pub(crate) fn nested_is_scalar(&self, outer: &str) -> bool {
        if let Some(j) = self.json.as_ref().and_then(|j| j.get(outer)) {
            return !j.is_object() && !j.is_null();
        }
        self.get(outer).is_some()
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(q: Option<&str>, ct: Option<&str>, body: &'static str) -> Params {
        Params::parse(q, ct, Bytes::from_static(body.as_bytes()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn body_overrides_query_and_no_content_type_is_a_form() {
        let p = parse(Some("secret=q&ttl=5"), None, "secret=b%26c+d").await;
        assert_eq!(p.get("secret"), Some("b&c d"));
        assert_eq!(p.get("ttl"), Some("5"));
    }

    #[tokio::test]
    async fn recipient_lists_come_from_brackets_or_json_arrays() {
        let p = parse(
            None,
            Some("application/x-www-form-urlencoded"),
            "recipient[]=a&recipient[]=b",
        )
        .await;
        assert_eq!(p.get_all("recipient"), vec!["a", "b"]);
        let p = parse(
            None,
            Some("application/json"),
            r#"{"recipient":["x"],"ttl":60}"#,
        )
        .await;
        assert_eq!(p.get_all("recipient"), vec!["x"]);
        assert_eq!(p.get("ttl"), Some("60"));
    }

    #[tokio::test]
    async fn nested_json_fields_are_found() {
        let p = parse(
            None,
            Some("application/json; charset=utf-8"),
            r#"{"secret":{"secret":"v","ttl":3600,"recipient":["r"]}}"#,
        )
        .await;
        assert_eq!(p.nested("secret", "secret").as_deref(), Some("v"));
        assert_eq!(p.nested("secret", "ttl").as_deref(), Some("3600"));
        assert_eq!(p.nested_all("secret", "recipient"), vec!["r"]);
    }

    #[tokio::test]
    async fn debug_output_shows_names_but_never_values() {
        let p = parse(None, None, "secret=top-secret-value&passphrase=pass-value").await;
        let shown = format!("{p:?}");
        assert!(shown.contains("secret") && shown.contains("passphrase"));
        assert!(!shown.contains("top-secret-value") && !shown.contains("pass-value"));
    }

    #[tokio::test]
    async fn malformed_json_is_an_error() {
        let r = Params::parse(None, Some("application/json"), Bytes::from_static(b"{")).await;
        assert!(matches!(r, Err(ParamsError::MalformedJson)));
    }

    #[tokio::test]
    async fn multipart_fields_are_read() {
        let body =
            "--XX\r\nContent-Disposition: form-data; name=\"secret\"\r\n\r\nhello\r\n--XX--\r\n";
        let p = parse(None, Some("multipart/form-data; boundary=XX"), body).await;
        assert_eq!(p.get("secret"), Some("hello"));
    }
}
