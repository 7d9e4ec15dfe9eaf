//! `request --wait` on the embedded log: it follows the log until the request is granted (exit
//! 0) or ends otherwise (exit 1, saying how), or gives up after its timeout; a bad timeout is a
//! usage error that records nothing.

mod support;

use std::time::{Duration, Instant};

use support::{finish, request_args, World, REFUSED, USAGE};

/// dave's `request --target prod … --wait LIMIT --json`, started in the background; returns the
/// process, its arguments and the request's id once it is in the log.
#[expect(
    clippy::zombie_processes,
    reason = "the process is returned, and its caller waits for it (`finish`)"
)]
fn waiting_request(w: &World, limit: &str) -> (std::process::Child, Vec<String>, String) {
    let before = w.status()["requests"]
        .as_array()
        .map_or(0, std::vec::Vec::len);
    let mut args: Vec<String> = vec!["--key-file".into(), w.dave.display().to_string()];
    args.extend(
        request_args("prod", "10m", "rotate keys")
            .into_iter()
            .map(str::to_owned),
    );
    args.extend(["--wait".into(), limit.into(), "--json".into()]);
    let mut child = w.cli.spawn(&args);
    let start = Instant::now();
    loop {
        let status = w.status();
        let requests = status["requests"].as_array().cloned().unwrap_or_default();
        if requests.len() > before {
            let id = requests
                .iter()
                .find(|r| r["status"] == "pending")
                .and_then(|r| r["id"].as_str())
                .expect("the new request is pending")
                .to_owned();
            return (child, args, id);
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the request never appeared");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn a_waiting_request_returns_when_granted_or_ended_or_timed_out() {
    let w = World::sqlite();

    let (child, args, id) = waiting_request(&w, "60s");
    w.by(&w.bob, &["approve", &id]).ok("bob approves");
    w.by(&w.carol, &["approve", &id]).ok("carol approves");
    let out = finish(child, &strs(&args), Duration::from_secs(30));
    out.ok("granted: the wait ends with exit 0");
    let v = out.json();
    assert_eq!(v["request"], id.as_str());
    assert_eq!(v["state"], "active", "{v}");
    assert!(v["deadline"].is_string(), "the deadline is reported: {v}");

    let (child, args, id) = waiting_request(&w, "60s");
    w.by(&w.bob, &["deny", &id, "--reason", "not now"])
        .ok("bob denies");
    let out = finish(child, &strs(&args), Duration::from_secs(30));
    out.code(REFUSED, "denied: not granted")
        .one_line_error("one line")
        .stderr_mentions(&[&id, "was not granted: denied"], "says how it ended");
    assert_eq!(
        out.json()["state"],
        "denied",
        "the JSON still says where it stands"
    );

    let (child, args, id) = waiting_request(&w, "1s");
    let out = finish(child, &strs(&args), Duration::from_secs(30));
    out.code(REFUSED, "timed out")
        .one_line_error("one line")
        .stderr_mentions(&[&id, "still pending after waiting 1s"], "says so");
    assert_eq!(w.state_of(&id), "pending", "the request itself stands");

    let size = w.log_size();
    let mut bad = request_args("prod", "10m", "x");
    bad.extend(["--wait", "soon"]);
    w.by(&w.dave, &bad)
        .code(USAGE, "a malformed timeout")
        .one_line_error("one line")
        .stderr_mentions(&["--wait"], "names the flag");
    assert_eq!(w.log_size(), size, "nothing was recorded");
}
