//! [`ScoreTarget`] that sends each request to a running riskgate server over plain HTTP.

use std::time::Duration;

use serde_json::Value;
use ureq::Agent;

use super::{ReplayError, ScoreTarget};

/// Time allowed for opening a connection to the server.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one whole request, from connecting to reading the response body.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Maximum number of characters of a non-JSON error body kept in an error message.
const MAX_ERROR_BODY_CHARS: usize = 500;

/// Client of `POST /v1/score` and `POST /v1/events` on one riskgate server.
///
/// The agent reuses connections between requests. TLS is not compiled in, so the base URL
/// must start with `http://`.
#[derive(Debug)]
pub struct HttpTarget {
    agent: Agent,
    score_url: String,
    events_url: String,
    authorization: Option<String>,
}

impl HttpTarget {
    /// Creates a client for the server at `base_url`, such as `http://127.0.0.1:8080`,
    /// with the default timeouts. `api_key` is sent as `Authorization: Bearer KEY`.
    pub fn new(base_url: &str, api_key: Option<&str>) -> Result<Self, ReplayError> {
        Self::with_timeouts(
            base_url,
            api_key,
            DEFAULT_CONNECT_TIMEOUT,
            DEFAULT_REQUEST_TIMEOUT,
        )
    }

    /// Creates a client like [`HttpTarget::new`] with the given connect and per-request
    /// timeouts.
    pub fn with_timeouts(
        base_url: &str,
        api_key: Option<&str>,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, ReplayError> {
        let base = base_url.trim_end_matches('/');
        let Some(host) = base.strip_prefix("http://") else {
            return Err(ReplayError::InvalidUrl {
                url: base_url.to_owned(),
                reason: "expected a URL starting with `http://`, such as \
                         `http://127.0.0.1:8080` (HTTPS is not supported)"
                    .to_owned(),
            });
        };
        if host.is_empty() {
            return Err(ReplayError::InvalidUrl {
                url: base_url.to_owned(),
                reason: "the host is missing".to_owned(),
            });
        }
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(connect_timeout))
            .timeout_global(Some(request_timeout))
            .build();
        Ok(HttpTarget {
            agent: config.new_agent(),
            score_url: format!("{base}/v1/score"),
            events_url: format!("{base}/v1/events"),
            authorization: api_key.map(|key| format!("Bearer {key}")),
        })
    }

    fn post(&self, url: &str, body: &Value) -> Result<Value, ReplayError> {
        let transport = |source: ureq::Error| ReplayError::Transport {
            url: url.to_owned(),
            source: Box::new(source),
        };
        let mut request = self.agent.post(url);
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        let mut response = request.send_json(body).map_err(transport)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(transport)?;
        if status >= 400 {
            return Err(rejection(status, &text));
        }
        serde_json::from_str(&text).map_err(|error| {
            ReplayError::InvalidResponse(format!(
                "{url} returned HTTP {status} with a body that is not JSON: {error}"
            ))
        })
    }
}

impl ScoreTarget for HttpTarget {
    fn score(&mut self, request: &Value) -> Result<Value, ReplayError> {
        self.post(&self.score_url, request)
    }

    fn event(&mut self, request: &Value) -> Result<Value, ReplayError> {
        self.post(&self.events_url, request)
    }
}

/// Maps an error response to [`ReplayError::Rejected`]. A body of the form
/// `{"error": {"code", "message", "field"}}` is split into its parts; any other body
/// becomes the message.
fn rejection(status: u16, body: &str) -> ReplayError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    let text_of = |name: &str| {
        error
            .and_then(|error| error.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let message = text_of("message").unwrap_or_else(|| {
        let trimmed = body.trim();
        if trimmed.chars().count() > MAX_ERROR_BODY_CHARS {
            let kept: String = trimmed.chars().take(MAX_ERROR_BODY_CHARS).collect();
            format!("{kept}...")
        } else {
            trimmed.to_owned()
        }
    });
    ReplayError::Rejected {
        status,
        code: text_of("code"),
        message,
        field: text_of("field"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::thread::{self, JoinHandle};

    use serde_json::json;

    use super::*;
    use crate::replay::{ReplayOptions, replay};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// One request as the test server read it.
    #[derive(Debug)]
    struct ReceivedRequest {
        request_line: String,
        /// Header names in lower case, with their values.
        headers: Vec<(String, String)>,
        body: Value,
    }

    impl ReceivedRequest {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        }
    }

    /// Starts an HTTP/1.1 server on 127.0.0.1 port 0. It reads one request per connection,
    /// responds with the next scripted `(status, body)`, and stops after the last one.
    fn serve(
        responses: Vec<(u16, String)>,
    ) -> std::io::Result<(String, JoinHandle<std::io::Result<Vec<ReceivedRequest>>>)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let handle = thread::spawn(move || {
            let mut received = Vec::new();
            for (status, body) in responses {
                let (stream, _) = listener.accept()?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut reader = BufReader::new(stream.try_clone()?);
                received.push(read_request(&mut reader)?);
                let mut stream = stream;
                write!(
                    stream,
                    "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )?;
                stream.flush()?;
            }
            Ok(received)
        });
        Ok((base_url, handle))
    }

    fn read_request(reader: &mut impl BufRead) -> std::io::Result<ReceivedRequest> {
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        Ok(ReceivedRequest {
            request_line: request_line.trim_end().to_owned(),
            headers,
            body: serde_json::from_slice(&body)?,
        })
    }

    fn join(
        handle: JoinHandle<std::io::Result<Vec<ReceivedRequest>>>,
    ) -> Result<Vec<ReceivedRequest>, Box<dyn std::error::Error>> {
        let received = handle
            .join()
            .map_err(|_| "the test server thread panicked")??;
        Ok(received)
    }

    #[test]
    fn http_replay_sends_exact_bodies() -> TestResult {
        let score_response = json!({
            "decision_id": "dec-1",
            "decision": "step_up",
            "risk": 0.61,
            "level": "medium",
            "required_factors": ["totp"],
            "reasons": [],
            "matched_rules": [],
            "rules_version": "r1",
            "model_version": "m1",
            "degraded": false,
            "learning": false,
        });
        let (base_url, handle) = serve(vec![
            (200, score_response.to_string()),
            (200, r#"{"accepted":true}"#.to_owned()),
            (200, r#"{"accepted":true}"#.to_owned()),
        ])?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("one.csv");
        std::fs::write(
            &path,
            "timestamp,user_id,ip,user_agent,role,app,tenant,device_id,login_successful,\
             is_attack,attack_kind,rtt_ms\n\
             2024-03-04T16:15:00+01:00,ada@clinic.example,89.160.20.115,\
             \"Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0\",\
             nurse,crm-web,linkoping,dev-7,true,false,,24\n",
        )?;

        let mut target = HttpTarget::new(&format!("{base_url}/"), Some("secret-key"))?;
        let summary = replay(&path, &mut target, &ReplayOptions::default())?;
        let received = join(handle)?;

        assert_eq!(summary.decisions.step_up, 1);
        assert_eq!(summary.events, 2);
        assert_eq!(received.len(), 3);
        assert_eq!(received[0].request_line, "POST /v1/score HTTP/1.1");
        assert_eq!(
            received[0].body,
            json!({
                "user_id": "ada@clinic.example",
                "ip": "89.160.20.115",
                "timestamp": "2024-03-04T15:15:00Z",
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
                "role": "nurse",
                "app": "crm-web",
                "tenant": "linkoping",
                "device": { "id": "dev-7" },
                "rtt_ms": 24.0,
            })
        );
        assert_eq!(received[1].request_line, "POST /v1/events HTTP/1.1");
        assert_eq!(
            received[1].body,
            json!({ "decision_id": "dec-1", "outcome": "mfa_passed" })
        );
        assert_eq!(received[2].request_line, "POST /v1/events HTTP/1.1");
        assert_eq!(
            received[2].body,
            json!({ "decision_id": "dec-1", "outcome": "login_succeeded" })
        );
        for request in &received {
            assert_eq!(request.header("authorization"), Some("Bearer secret-key"));
            let content_type = request.header("content-type").unwrap_or_default();
            assert!(
                content_type.starts_with("application/json"),
                "content type `{content_type}`"
            );
        }
        Ok(())
    }

    #[test]
    fn http_400_maps_error_body() -> TestResult {
        let error_body = json!({
            "error": {
                "code": "invalid_field",
                "message": "`ip` is not an IP address",
                "field": "ip",
            }
        });
        let (base_url, handle) = serve(vec![(400, error_body.to_string())])?;
        let mut target = HttpTarget::new(&base_url, None)?;
        let result = target.score(&json!({ "user_id": "ada", "ip": "nope" }));
        let received = join(handle)?;

        let Err(error) = result else {
            return Err("a 400 response was returned as a success".into());
        };
        assert_eq!(
            error.to_string(),
            "service returned HTTP 400: `ip` is not an IP address \
             (code `invalid_field`, field `ip`)"
        );
        let ReplayError::Rejected {
            status,
            code,
            message,
            field,
        } = error
        else {
            return Err(format!("expected ReplayError::Rejected, got {error:?}").into());
        };
        assert_eq!(status, 400);
        assert_eq!(code.as_deref(), Some("invalid_field"));
        assert_eq!(message, "`ip` is not an IP address");
        assert_eq!(field.as_deref(), Some("ip"));
        assert_eq!(received[0].header("authorization"), None);
        assert_eq!(received[0].body, json!({ "user_id": "ada", "ip": "nope" }));
        Ok(())
    }

    #[test]
    fn http_500_plain_body_kept() -> TestResult {
        let (base_url, handle) = serve(vec![(500, "database is locked".to_owned())])?;
        let mut target = HttpTarget::new(&base_url, None)?;
        let result = target.event(&json!({ "decision_id": "d", "outcome": "login_failed" }));
        let received = join(handle)?;
        assert_eq!(received[0].request_line, "POST /v1/events HTTP/1.1");
        let Err(ReplayError::Rejected {
            status,
            code,
            message,
            field,
        }) = result
        else {
            return Err(format!("expected ReplayError::Rejected, got {result:?}").into());
        };
        assert_eq!(status, 500);
        assert_eq!(code, None);
        assert_eq!(message, "database is locked");
        assert_eq!(field, None);
        Ok(())
    }

    #[test]
    fn http_non_json_success_is_invalid() -> TestResult {
        let (base_url, handle) = serve(vec![(200, "<html>proxy</html>".to_owned())])?;
        let mut target = HttpTarget::new(&base_url, None)?;
        let result = target.score(&json!({ "user_id": "ada", "ip": "81.2.69.160" }));
        join(handle)?;
        assert!(matches!(result, Err(ReplayError::InvalidResponse(_))));
        Ok(())
    }

    #[test]
    fn http_refused_connection_aborts() -> TestResult {
        // Binding and dropping a listener yields a loopback port with nothing behind it.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut target = HttpTarget::new(&format!("http://127.0.0.1:{port}"), None)?;
        let result = target.score(&json!({ "user_id": "ada", "ip": "81.2.69.160" }));
        let Err(error) = result else {
            return Err("a request to a closed port succeeded".into());
        };
        assert!(matches!(error, ReplayError::Transport { .. }), "{error:?}");
        assert!(error.aborts_replay());
        Ok(())
    }

    #[test]
    fn http_url_must_be_plain_http() {
        for url in ["https://127.0.0.1:8443", "127.0.0.1:8080", "http://", ""] {
            assert!(
                matches!(
                    HttpTarget::new(url, None),
                    Err(ReplayError::InvalidUrl { .. })
                ),
                "`{url}` was accepted"
            );
        }
    }

    #[test]
    fn rejection_truncates_long_body() {
        let body = "x".repeat(2 * MAX_ERROR_BODY_CHARS);
        let ReplayError::Rejected { message, .. } = rejection(502, &body) else {
            panic!("rejection() returned another variant");
        };
        assert_eq!(message.len(), MAX_ERROR_BODY_CHARS + 3);
        assert!(message.ends_with("..."));
    }
}
