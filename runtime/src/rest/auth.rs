//! Optional authentication: `Authorization: Bearer <token>` and/or `Basic` users from the
//! worker config (`rest.auth`). Missing or wrong credentials get a 401 with a
//! `WWW-Authenticate` challenge; a `read_only` credential gets a 403 on anything but reads.
//! `/health` is left open (it is routed outside this layer).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::RestState;
use super::error::ApiError;
use crate::config::{ConfigErrors, RawConfig, RestAuthConfig, RestRole, interpolate};

/// Checks credentials against the configured tokens and users.
pub struct Authenticator {
    tokens: Vec<(String, RestRole)>,
    users: Vec<(String, String, RestRole)>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Authenticator({} tokens, {} users)",
            self.tokens.len(),
            self.users.len()
        )
    }
}

impl Authenticator {
    /// Resolves `${env:...}` / `${file:...}` references in the secrets.
    pub fn from_config(config: &RestAuthConfig) -> Result<Self, ConfigErrors> {
        let mut raw = RawConfig::new();
        for (i, t) in config.tokens.iter().enumerate() {
            raw.insert(format!("rest.auth.tokens[{i}].token"), t.token.clone());
        }
        for (i, u) in config.users.iter().enumerate() {
            raw.insert(format!("rest.auth.users[{i}].password"), u.password.clone());
        }
        let resolved = interpolate(&raw)?;
        let value = |key: String| resolved.get(&key).cloned().unwrap_or_default();
        let tokens = config
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (value(format!("rest.auth.tokens[{i}].token")), t.role))
            .collect::<Vec<_>>();
        let users = config
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                (
                    u.username.clone(),
                    value(format!("rest.auth.users[{i}].password")),
                    u.role,
                )
            })
            .collect::<Vec<_>>();
        let mut errors = ConfigErrors::default();
        if tokens.is_empty() && users.is_empty() {
            errors.push("rest.auth", "needs at least one of tokens or users");
        }
        if tokens.iter().any(|(t, _)| t.is_empty()) || users.iter().any(|(_, p, _)| p.is_empty()) {
            errors.push(
                "rest.auth",
                "a token or password resolved to an empty value",
            );
        }
        errors.into_result(Authenticator { tokens, users })
    }

    /// The role of the caller, or the error to answer with.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> Result<RestRole, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
        let Some(value) = authorization else {
            return Err(unauthorized(
                "authentication required: send Authorization: Bearer <token> or Basic credentials",
            ));
        };
        let value = value
            .to_str()
            .map_err(|_| unauthorized("invalid Authorization header"))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            // Compare against every token, so timing does not tell which one was close.
            let mut found = None;
            for (token, role) in &self.tokens {
                if constant_time_eq(token.as_bytes(), rest.as_bytes()) {
                    found = Some(*role);
                }
            }
            return found.ok_or_else(|| unauthorized("invalid bearer token"));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| unauthorized("invalid Basic credentials encoding"))?;
            let (user, password) = decoded
                .split_once(':')
                .ok_or_else(|| unauthorized("invalid Basic credentials"))?;
            let mut found = None;
            for (u, p, role) in &self.users {
                let user_ok = constant_time_eq(u.as_bytes(), user.as_bytes());
                let password_ok = constant_time_eq(p.as_bytes(), password.as_bytes());
                if user_ok & password_ok {
                    found = Some(*role);
                }
            }
            return found.ok_or_else(|| unauthorized("invalid username or password"));
        }
        Err(unauthorized(
            "unsupported authorization scheme; use Bearer or Basic",
        ))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// The middleware: passes everything when no authentication is configured.
pub async fn require(State(state): State<RestState>, request: Request, next: Next) -> Response {
    let Some(auth) = &state.auth else {
        return next.run(request).await;
    };
    match auth.check(request.headers().get(header::AUTHORIZATION)) {
        Ok(RestRole::Admin) => next.run(request).await,
        Ok(RestRole::ReadOnly) if matches!(*request.method(), Method::GET | Method::HEAD) => {
            next.run(request).await
        }
        Ok(RestRole::ReadOnly) => {
            ApiError::new(StatusCode::FORBIDDEN, "this credential is read-only").into_response()
        }
        Err(e) => {
            let mut response = e.into_response();
            let headers = response.headers_mut();
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tributary\""),
            );
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tributary\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RestToken, RestUser};

    fn auth() -> Authenticator {
        Authenticator::from_config(&RestAuthConfig {
            tokens: vec![
                RestToken {
                    token: "t0k3n".into(),
                    role: RestRole::Admin,
                },
                RestToken {
                    token: "reader".into(),
                    role: RestRole::ReadOnly,
                },
            ],
            users: vec![RestUser {
                username: "admin".into(),
                password: "pw:with:colons".into(),
                role: RestRole::Admin,
            }],
        })
        .expect("valid")
    }

    fn header(v: &str) -> HeaderValue {
        HeaderValue::from_str(v).expect("header")
    }

    #[test]
    fn accepts_good_credentials_only() {
        let a = auth();
        assert_eq!(a.check(Some(&header("Bearer t0k3n"))), Ok(RestRole::Admin));
        assert_eq!(
            a.check(Some(&header("bearer reader"))),
            Ok(RestRole::ReadOnly)
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("admin:pw:with:colons");
        assert_eq!(
            a.check(Some(&header(&format!("Basic {basic}")))),
            Ok(RestRole::Admin)
        );
        for bad in [
            "Bearer t0k3",
            "Bearer t0k3nn",
            "Bearer",
            "Basic !!!",
            "Digest x",
            "t0k3n",
            "Basic YWRtaW46d3Jvbmc=",
        ] {
            let e = a.check(Some(&header(bad))).expect_err(bad);
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{bad}");
        }
        assert_eq!(
            a.check(None).expect_err("none").status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn secrets_may_come_from_the_environment() {
        let config = RestAuthConfig {
            tokens: vec![RestToken {
                token: "${env:TRIBUTARY_TEST_REST_TOKEN_UNSET_42}".into(),
                role: RestRole::Admin,
            }],
            users: vec![],
        };
        let err = Authenticator::from_config(&config).expect_err("unset variable");
        assert!(
            err.to_string().contains("rest.auth.tokens[0].token"),
            "{err}"
        );
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
