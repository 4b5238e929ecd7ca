//! Who may connect: HS256 JWTs (signature, `exp`, `nbf`, algorithm pinned), the `Origin`
//! allow-list, and the publish API's key — secrets compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub nick: String,
    /// The rooms it may join; `None`: any.
    pub rooms: Option<Vec<String>>,
}

/// Checks HS256 tokens against one secret.
pub struct Jwt {
    secret: Vec<u8>,
}

/// Clock skew allowed on `exp` and `nbf`, in seconds.
const LEEWAY: u64 = 30;

impl Jwt {
    pub fn new(secret: Vec<u8>) -> Jwt {
        Jwt { secret }
    }

    /// The claims of `token`, or why it is refused (a sentence for the 401's body).
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        self.verify_at(token, unix_now())
    }

    pub fn verify_at(&self, token: &str, now: u64) -> Result<Claims, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the token is not a JWT (three base64url parts)".into());
        };
        let header: serde_json::Value = decode_json(header, "header")?;
        // The algorithm is pinned: `none`, RS256 and the rest are refused before anything
        // else is looked at.
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err("the token's algorithm is not HS256".into());
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| "the token's signature is not base64url".to_string())?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .map_err(|_| "the server's secret is unusable".to_string())?;
        mac.update(header_and_payload(token).as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&signature)
            .map_err(|_| "the token's signature is wrong".to_string())?;
        let claims: serde_json::Value = decode_json(payload, "payload")?;
        let number = |name: &str| claims.get(name).and_then(|v| v.as_u64());
        if claims.get("exp").is_some() {
            match number("exp") {
                Some(exp) if now <= exp.saturating_add(LEEWAY) => {}
                Some(_) => return Err("the token has expired".into()),
                None => return Err("the token's exp is not a number".into()),
            }
        }
        if claims.get("nbf").is_some() {
            match number("nbf") {
                Some(nbf) if now.saturating_add(LEEWAY) >= nbf => {}
                Some(_) => return Err("the token is not valid yet (nbf)".into()),
                None => return Err("the token's nbf is not a number".into()),
            }
        }
        let nick = ["name", "sub"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(|v| v.as_str()))
            .ok_or_else(|| "the token has neither a name nor a sub claim".to_string())?;
        let nick = super::valid_nick(nick).ok_or_else(|| {
            "the token's name is not a valid nick (1-32 printable characters)".to_string()
        })?;
        let rooms = match claims.get("rooms") {
            None => None,
            Some(serde_json::Value::Array(list)) => Some(
                list.iter()
                    .map(|r| r.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| "the token's rooms claim is not a list of names".to_string())?,
            ),
            Some(_) => return Err("the token's rooms claim is not a list".into()),
        };
        Ok(Claims { nick, rooms })
    }

    /// Makes a token (tests and the README's example).
    #[cfg(test)]
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret).unwrap();
        mac.update(format!("{header}.{payload}").as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{header}.{payload}.{signature}")
    }
}

fn header_and_payload(token: &str) -> &str {
    token.rsplit_once('.').map_or(token, |(hp, _)| hp)
}

fn decode_json(part: &str, what: &str) -> Result<serde_json::Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("the token's {what} is not base64url"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| format!("the token's {what} is not JSON"))?;
    if !value.is_object() {
        return Err(format!("the token's {what} is not a JSON object"));
    }
    Ok(value)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether two secrets are equal, in time that depends only on their digests' length: both
/// are hashed first, so neither their contents nor their lengths leak through timing.
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// The `Origin` rule: same-origin (its host and port are the request's `Host`) and the
/// listed origins pass; `*` lets every origin in. Requests without `Origin` do not come from
/// a browser page and pass.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    host.is_some_and(|h| h.eq_ignore_ascii_case(authority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn tokens_are_checked_as_they_should_be() {
        let jwt = Jwt::new(b"secret".to_vec());
        let good = jwt.sign(&json!({"sub": "ann", "exp": NOW + 60, "rooms": ["a", "b"]}));
        assert_eq!(
            jwt.verify_at(&good, NOW),
            Ok(Claims {
                nick: "ann".into(),
                rooms: Some(vec!["a".into(), "b".into()])
            })
        );
        let named = jwt.sign(&json!({"sub": "id-1", "name": "Ann B"}));
        assert_eq!(jwt.verify_at(&named, NOW).unwrap().nick, "Ann B");
        let expired = jwt.sign(&json!({"sub": "ann", "exp": NOW - 31}));
        assert_eq!(
            jwt.verify_at(&expired, NOW).unwrap_err(),
            "the token has expired"
        );
        let early = jwt.sign(&json!({"sub": "ann", "nbf": NOW + 31}));
        assert!(jwt.verify_at(&early, NOW).unwrap_err().contains("nbf"));
        let other = Jwt::new(b"other".to_vec()).sign(&json!({"sub": "ann"}));
        assert_eq!(
            jwt.verify_at(&other, NOW).unwrap_err(),
            "the token's signature is wrong"
        );
        // alg: none, with or without a signature.
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"ann"}"#);
        for token in [
            format!("{none_header}.{payload}."),
            format!("{none_header}.{payload}.xx"),
        ] {
            assert_eq!(
                jwt.verify_at(&token, NOW).unwrap_err(),
                "the token's algorithm is not HS256"
            );
        }
        // HS512 header over an HS256 signature: refused for its algorithm too.
        let hs512 = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512"}"#);
        let swapped = good.replacen(good.split('.').next().unwrap(), &hs512, 1);
        assert!(jwt
            .verify_at(&swapped, NOW)
            .unwrap_err()
            .contains("algorithm"));
        // A changed payload breaks the signature.
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"root"}"#);
        parts[1] = &forged;
        assert!(jwt
            .verify_at(&parts.join("."), NOW)
            .unwrap_err()
            .contains("signature"));
        assert!(jwt.verify_at("not-a-token", NOW).is_err());
        assert!(jwt.verify_at("a.b.c.d", NOW).is_err());
    }

    #[test]
    fn origins_and_secrets() {
        let list = vec!["https://chat.example".to_string()];
        assert!(origin_allowed(None, Some("x:1"), &[]));
        assert!(origin_allowed(
            Some("http://127.0.0.1:8080"),
            Some("127.0.0.1:8080"),
            &[]
        ));
        assert!(!origin_allowed(
            Some("http://evil.example"),
            Some("127.0.0.1:8080"),
            &[]
        ));
        assert!(origin_allowed(
            Some("https://chat.example"),
            Some("h"),
            &list
        ));
        assert!(!origin_allowed(
            Some("https://chat.example.evil"),
            Some("h"),
            &list
        ));
        assert!(origin_allowed(
            Some("https://any"),
            Some("h"),
            &["*".to_string()]
        ));
        assert!(secret_eq(b"key", b"key"));
        assert!(!secret_eq(b"key", b"kez"));
        assert!(!secret_eq(b"key", b"key2"));
    }
}
