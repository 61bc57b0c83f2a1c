//! Amazon SNS over HTTPS: message parsing, signature verification (v1 SHA-1, v2 SHA-256, RSA
//! PKCS#1 v1.5), certificate and subscribe URL validation, freshness and `MessageId` dedupe.
//!
//! The certificate is only fetched from `https://sns.<region>.amazonaws.com/….pem`; the
//! subscription is confirmed only after the confirmation's own signature verified. The
//! test-only loopback trust (`--sns-test-trust-loopback`) additionally accepts `http://127.0.0.1`
//! URLs so tests can sign with their own key and serve the certificate themselves; never enable
//! it in production.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::sync::LockExt;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde::Deserialize;
use x509_cert::der::{DecodePem, Encode};

/// The SNS envelope (all fields optional: validation decides what is required).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Message {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub message_id: Option<String>,
    pub token: Option<String>,
    pub topic_arn: Option<String>,
    pub subject: Option<String>,
    pub message: Option<String>,
    #[serde(rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
    pub timestamp: Option<String>,
    pub signature_version: Option<String>,
    pub signature: Option<String>,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: Option<String>,
}

/// Why a message was refused (all are permanent: 4xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Malformed: 400.
    Malformed(String),
    /// Not trusted (signature, URL, topic, age): 403.
    Forbidden(String),
}

/// The string SNS signs: `Name\nValue\n` for the type's fields in order, skipping absent ones.
pub(crate) fn string_to_sign(m: &Message) -> Result<String, Reject> {
    let kind = m.kind.as_deref().ok_or_else(|| Reject::Malformed("missing `Type`".into()))?;
    let fields: Vec<(&str, &Option<String>)> = match kind {
        "Notification" => vec![
            ("Message", &m.message),
            ("MessageId", &m.message_id),
            ("Subject", &m.subject),
            ("Timestamp", &m.timestamp),
            ("TopicArn", &m.topic_arn),
            ("Type", &m.kind),
        ],
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => vec![
            ("Message", &m.message),
            ("MessageId", &m.message_id),
            ("SubscribeURL", &m.subscribe_url),
            ("Timestamp", &m.timestamp),
            ("Token", &m.token),
            ("TopicArn", &m.topic_arn),
            ("Type", &m.kind),
        ],
        other => return Err(Reject::Malformed(format!("unknown SNS message type `{other}`"))),
    };
    let mut out = String::new();
    for (name, value) in fields {
        if let Some(v) = value {
            out.push_str(name);
            out.push('\n');
            out.push_str(v);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The only hosts certificates and subscription URLs are fetched from.
static SNS_HOST: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^sns\.[a-zA-Z0-9-]{3,}\.amazonaws\.com(\.cn)?$").expect("static regex")
});

/// Verifies SNS messages and confirms subscriptions.
#[derive(Debug)]
pub(crate) struct SnsVerifier {
    /// Built on first use: a server that never sees SNS never loads the TLS roots.
    client: std::sync::OnceLock<reqwest::Client>,
    certs: Mutex<HashMap<String, RsaPublicKey>>,
    pub trust_loopback: bool,
    pub max_age: Duration,
    seen: Mutex<crate::server::limits::Seen>,
}

impl SnsVerifier {
    pub(crate) fn new(trust_loopback: bool, max_age: Duration) -> Self {
        Self {
            client: std::sync::OnceLock::new(),
            certs: Mutex::new(HashMap::new()),
            trust_loopback,
            max_age,
            seen: Mutex::new(crate::server::limits::Seen::new(100_000)),
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a TLS client with default settings always builds")
        })
    }

    /// Whether `url` may be fetched: https on an SNS host (and `.pem` for certificates).
    pub(crate) fn check_url(&self, url: &str, cert: bool) -> Result<(), Reject> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|_| Reject::Forbidden(format!("invalid URL `{url}`")))?;
        let host = parsed.host_str().unwrap_or_default();
        let loopback = self.trust_loopback && parsed.scheme() == "http" && host == "127.0.0.1";
        let sns = parsed.scheme() == "https" && SNS_HOST.is_match(host) && parsed.port().is_none();
        if !(loopback || sns) {
            return Err(Reject::Forbidden(format!("`{url}` is not an SNS endpoint")));
        }
        if cert && !parsed.path().ends_with(".pem") {
            return Err(Reject::Forbidden(format!(
                "certificate URL `{url}` does not end in `.pem`"
            )));
        }
        Ok(())
    }

    async fn certificate(&self, url: &str) -> Result<RsaPublicKey, Reject> {
        if let Some(k) = self.certs.locked().get(url) {
            return Ok(k.clone());
        }
        self.check_url(url, true)?;
        let fetch_err =
            |e: String| Reject::Forbidden(format!("cannot fetch signing certificate: {e}"));
        let resp = self.client().get(url).send().await.map_err(|e| fetch_err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fetch_err(format!("HTTP {}", resp.status())));
        }
        let pem = resp.bytes().await.map_err(|e| fetch_err(e.to_string()))?;
        let key = public_key_from_pem(&pem).map_err(fetch_err)?;
        self.certs.locked().insert(url.to_string(), key.clone());
        Ok(key)
    }

    /// Verify signature, certificate URL and freshness.
    pub(crate) async fn verify(&self, m: &Message) -> Result<(), Reject> {
        let text = string_to_sign(m)?;
        let sig = m
            .signature
            .as_deref()
            .ok_or_else(|| Reject::Forbidden("missing `Signature`".into()))?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .map_err(|_| Reject::Forbidden("`Signature` is not base64".into()))?;
        let sig = Signature::try_from(sig.as_slice())
            .map_err(|_| Reject::Forbidden("malformed signature".into()))?;
        let url = m
            .signing_cert_url
            .as_deref()
            .ok_or_else(|| Reject::Forbidden("missing `SigningCertURL`".into()))?;
        self.check_url(url, true)?;
        let version = m.signature_version.as_deref().unwrap_or("");
        if version != "1" && version != "2" {
            return Err(Reject::Forbidden(format!("unsupported `SignatureVersion` `{version}`")));
        }
        let key = self.certificate(url).await?;
        let ok = match version {
            "1" => VerifyingKey::<sha1::Sha1>::new(key).verify(text.as_bytes(), &sig).is_ok(),
            _ => VerifyingKey::<sha2::Sha256>::new(key).verify(text.as_bytes(), &sig).is_ok(),
        };
        if !ok {
            return Err(Reject::Forbidden("signature does not verify".into()));
        }
        self.check_fresh(m)
    }

    /// Reject messages older than `max_age` (replays) or from the future.
    pub(crate) fn check_fresh(&self, m: &Message) -> Result<(), Reject> {
        let ts = m
            .timestamp
            .as_deref()
            .ok_or_else(|| Reject::Malformed("missing `Timestamp`".into()))?;
        let t: DateTime<Utc> = DateTime::parse_from_rfc3339(ts)
            .map_err(|_| Reject::Malformed(format!("invalid `Timestamp` `{ts}`")))?
            .with_timezone(&Utc);
        let age = Utc::now() - t;
        let max = chrono::Duration::from_std(self.max_age).unwrap_or(chrono::Duration::MAX);
        if age > max {
            return Err(Reject::Forbidden(format!("message is too old ({}s)", age.num_seconds())));
        }
        if age < chrono::Duration::minutes(-5) {
            return Err(Reject::Forbidden("message timestamp is in the future".into()));
        }
        Ok(())
    }

    /// Record a `MessageId`; false when it was seen before (SNS retries reuse it).
    pub(crate) fn first_delivery(&self, id: &str) -> bool {
        self.seen.locked().insert(id)
    }

    /// Forget a `MessageId` whose delivery was not accepted (queue full, confirmation failed),
    /// so SNS's retry is processed.
    pub(crate) fn forget(&self, id: &str) {
        self.seen.locked().forget(id);
    }

    /// Confirm a subscription by GETting its (validated) `SubscribeURL`.
    pub(crate) async fn confirm(&self, url: &str) -> Result<(), Reject> {
        self.check_url(url, false)?;
        let resp = self
            .client()
            .get(url)
            .send()
            .await
            .map_err(|e| Reject::Forbidden(format!("cannot confirm subscription: {e}")))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Reject::Forbidden(format!(
                "subscription confirmation answered HTTP {}",
                resp.status()
            )))
        }
    }
}

/// The RSA public key of a PEM X.509 certificate.
pub(crate) fn public_key_from_pem(pem: &[u8]) -> Result<RsaPublicKey, String> {
    let cert =
        x509_cert::Certificate::from_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| e.to_string())?;
    RsaPublicKey::from_public_key_der(&spki).map_err(|e| format!("not an RSA certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Message {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        serde_json::from_str(&text).expect("fixture parses")
    }

    #[test]
    fn string_to_sign_follows_the_field_order() {
        let m = fixture("sns-notification-cloudwatch-alarm.json");
        let s = string_to_sign(&m).expect("sign text");
        let names: Vec<&str> = s.lines().step_by(2).collect();
        assert_eq!(names, ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]);
        let c = fixture("sns-subscription-confirmation.json");
        let s = string_to_sign(&c).expect("sign text");
        let names: Vec<&str> = s
            .lines()
            .filter(|l| l.chars().next().is_some_and(char::is_uppercase))
            .take(7)
            .collect();
        assert_eq!(names[0], "Message");
        assert!(s.contains(
            "SubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
        ));
        assert!(s.contains("Token\n2336412f"));
    }

    #[test]
    fn urls_must_be_sns_https() {
        let v = SnsVerifier::new(false, Duration::from_secs(3600));
        assert!(
            v.check_url(
                "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
                true
            )
            .is_ok()
        );
        assert!(v.check_url("https://sns.cn-north-1.amazonaws.com.cn/x.pem", true).is_ok());
        assert!(v.check_url("http://sns.us-east-1.amazonaws.com/x.pem", true).is_err());
        assert!(v.check_url("https://sns.us-east-1.amazonaws.com.evil.com/x.pem", true).is_err());
        assert!(v.check_url("https://evil.com/sns.us-east-1.amazonaws.com/x.pem", true).is_err());
        assert!(v.check_url("https://sns.us-east-1.amazonaws.com/x.txt", true).is_err());
        assert!(v.check_url("http://127.0.0.1:9/x.pem", true).is_err());
        let t = SnsVerifier::new(true, Duration::from_secs(3600));
        assert!(t.check_url("http://127.0.0.1:9/x.pem", true).is_ok());
        assert!(t.check_url("http://10.0.0.1:9/x.pem", true).is_err());
    }

    /// The committed envelopes that once needed care are refused or parsed without panicking.
    #[test]
    fn the_corpus_is_handled() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/sns");
        let v = SnsVerifier::new(false, Duration::from_secs(3600));
        for entry in std::fs::read_dir(&dir).expect("corpus dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("corpus file");
            let m: Message = serde_json::from_str(&text).expect("an envelope");
            let checked = string_to_sign(&m).and_then(|_| v.check_fresh(&m));
            assert!(checked.is_err(), "{} was accepted", path.display());
        }
    }

    mod props {
        use proptest::prelude::*;

        use crate::server::sns::{Message, Reject, SnsVerifier, string_to_sign};

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// Any envelope: parsing, the string to sign, freshness and URL checks never panic,
            /// and every rejection says why.
            #[test]
            fn envelopes_never_panic(
                kind in proptest::option::of(prop_oneof![Just("Notification".to_string()), Just("SubscriptionConfirmation".to_string()), ".{0,12}"]),
                timestamp in proptest::option::of(prop_oneof![Just("2026-01-01T00:00:00Z".to_string()), Just("+275760-09-13T00:00:00Z".to_string()), ".{0,30}"]),
                url in ".{0,60}",
                message in ".{0,40}",
            ) {
                let m: Message = serde_json::from_value(serde_json::json!({
                    "Type": kind, "Timestamp": timestamp, "Message": message, "MessageId": "m",
                    "SigningCertURL": url, "SubscribeURL": url,
                })).expect("strings always parse");
                let v = SnsVerifier::new(false, std::time::Duration::from_secs(3600));
                for r in [string_to_sign(&m).map(|_| ()), v.check_fresh(&m), v.check_url(&url, true)] {
                    if let Err(Reject::Malformed(why) | Reject::Forbidden(why)) = r {
                        prop_assert!(!why.is_empty());
                    }
                }
            }
        }
    }
}
