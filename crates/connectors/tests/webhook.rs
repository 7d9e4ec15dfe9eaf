//! Webhook deliveries against a receiver on a loopback port: signatures a receiver can check,
//! retries of transient failures with one delivery id, final refusals, time-outs, no redirects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breakglass_connectors::webhook::{verify, Retry, Webhook, DELIVERY_HEADER, SIGNATURE_HEADER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SECRET: &[u8] = b"a webhook secret of at least 32 bytes";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    head: String,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// What the receiver does with each request in turn (the last one repeats).
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Reads the request and never answers.
    Silence,
    /// A redirect to another path of the same receiver.
    Redirect,
}

/// A minimal HTTP/1.1 receiver on a free loopback port, recording what it receives.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn receiver(answers: Vec<Answer>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let answer = answers[n.min(answers.len() - 1)];
            n += 1;
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let read = stream.read(&mut chunk).await.unwrap_or(0);
                    if read == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..read]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let read = stream.read(&mut chunk).await.unwrap_or(0);
                    if read == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..read]);
                }
                let body = buf[head_end..head_end + length].to_vec();
                log.lock().unwrap().push(Received { head, body });
                let response = match answer {
                    Answer::Silence => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    Answer::Status(status) => format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 14\r\nconnection: close\r\n\r\n\
                         echo: a secret"
                    ),
                    Answer::Redirect => "HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\n\
                                         content-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned(),
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Receiver { url, received }
}

fn quick(attempts: u32) -> Retry {
    Retry {
        attempts,
        timeout: Duration::from_millis(800),
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(80),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

const BODY: &[u8] = br#"{"action":"grant","request":"r-1","deadline":"2026-11-24T12:00:00Z"}"#;

#[tokio::test]
async fn a_delivery_carries_a_signature_the_receiver_can_verify() {
    let rx = receiver(vec![Answer::Status(204)]).await;
    let hook = Webhook::new(&rx.url, SECRET, quick(3)).expect("webhook");
    let delivered = hook.send("delivery-1", BODY, now).await.expect("delivered");
    assert_eq!((delivered.status, delivered.attempts), (204, 1));

    let got = rx.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert!(
        request.head.starts_with("POST /hook HTTP/1.1\r\n"),
        "{}",
        request.head
    );
    assert_eq!(request.body, BODY);
    assert_eq!(
        request.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        request.header(DELIVERY_HEADER).as_deref(),
        Some("delivery-1")
    );
    let signature = request.header(SIGNATURE_HEADER).expect("signed");
    verify(SECRET, &signature, &request.body, now(), 60).expect("the receiver accepts it");
    assert!(verify(
        b"somebody else's secret, 32 bytes long",
        &signature,
        &request.body,
        now(),
        60
    )
    .is_err());
}

#[tokio::test]
async fn transient_failures_are_retried_as_one_delivery() {
    let rx = receiver(vec![
        Answer::Status(503),
        Answer::Status(429),
        Answer::Status(200),
    ])
    .await;
    let hook = Webhook::new(&rx.url, SECRET, quick(5)).expect("webhook");
    let delivered = hook.send("delivery-2", BODY, now).await.expect("delivered");
    assert_eq!((delivered.status, delivered.attempts), (200, 3));
    let got = rx.received.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    for request in &got {
        assert_eq!(
            request.header(DELIVERY_HEADER).as_deref(),
            Some("delivery-2")
        );
        assert_eq!(request.body, BODY);
    }
}

#[tokio::test]
async fn a_refusal_is_final_and_its_body_is_not_repeated() {
    let rx = receiver(vec![Answer::Status(400)]).await;
    let hook = Webhook::new(&rx.url, SECRET, quick(5)).expect("webhook");
    let error = hook
        .send("delivery-3", BODY, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("HTTP 400") && error.contains("not retried"),
        "{error}"
    );
    assert!(
        !error.contains("secret"),
        "the receiver's answer is not quoted: {error}"
    );
    assert_eq!(rx.received.lock().unwrap().len(), 1, "not retried");
}

#[tokio::test]
async fn failing_attempts_end_in_an_error_naming_the_last_cause() {
    let rx = receiver(vec![Answer::Status(502)]).await;
    let hook = Webhook::new(&rx.url, SECRET, quick(3)).expect("webhook");
    let error = hook.send("d", BODY, now).await.unwrap_err().to_string();
    assert!(
        error.contains("after 3 attempt(s)") && error.contains("HTTP 502"),
        "{error}"
    );
    assert_eq!(rx.received.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_silent_receiver_times_out_and_is_retried() {
    let rx = receiver(vec![Answer::Silence]).await;
    let hook = Webhook::new(&rx.url, SECRET, quick(2)).expect("webhook");
    let started = std::time::Instant::now();
    let error = hook.send("d", BODY, now).await.unwrap_err().to_string();
    assert!(error.contains("did not answer within 0.8 s"), "{error}");
    assert_eq!(
        rx.received.lock().unwrap().len(),
        2,
        "both attempts reached it"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "time-outs bound the delivery"
    );
}

#[tokio::test]
async fn an_unreachable_receiver_is_named() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let hook = Webhook::new(&format!("http://127.0.0.1:{port}/"), SECRET, quick(2)).unwrap();
    let error = hook.send("d", BODY, now).await.unwrap_err().to_string();
    assert!(error.contains("could not connect to 127.0.0.1"), "{error}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let rx = receiver(vec![Answer::Redirect, Answer::Status(200)]).await;
    let hook = Webhook::new(&rx.url, SECRET, quick(3)).expect("webhook");
    let error = hook.send("d", BODY, now).await.unwrap_err().to_string();
    assert!(error.contains("HTTP 302"), "{error}");
    let got = rx.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "the grant went nowhere else");
}
