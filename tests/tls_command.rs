//! TLS through the `rfc6455` command: `echo --tls-cert/--tls-key` with `rfc6455 client
//! --ca`, a SIGHUP reload that keeps a live connection (and refuses a bad pair with a log
//! line), `serve --tls-cert` over https://, and python `websockets` as a client no one here
//! wrote (run by .ci/run, which installs it: `RFC6455_PYTHON=... cargo test --test
//! tls_command -- --ignored`). Certificates are made at test time with rcgen.
#![cfg(all(feature = "tls", feature = "cli"))]

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rfc6455::client::{Client, ConnectOptions};
use rfc6455::{Event, Message};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(20);

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` (for localhost and 127.0.0.1) into `dir`.
    fn write(&self, dir: &Path) {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.0)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), self.0.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rfc6455-tlscmd-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A command child killed on drop, with its stderr going to a file.
struct Running {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts `rfc6455 ARGS` and reads the address after `scheme://` in its first line.
    fn start(args: &[&str], scheme: &str, dir: &Path) -> Running {
        let stderr = dir.join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("rfc6455");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split(&format!("{scheme}://"))
            .nth(1)
            .and_then(|r| r.split(['/', ',', ' ']).next())
            .unwrap_or_else(|| panic!("no {scheme}:// address in {line:?}"))
            .parse()
            .unwrap();
        Running {
            child,
            addr,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until stderr says `what`.
    fn await_log(&self, what: &str) {
        let start = Instant::now();
        while !self.stderr().contains(what) {
            assert!(start.elapsed() < BOUND, "no {what:?} in {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn trusting(dir: &Path) -> ConnectOptions {
    let ca = rfc6455::tls::load_certs(dir.join("ca.pem")).unwrap();
    ConnectOptions::default().ca(ca).read_timeout(Some(BOUND))
}

fn echoes(client: &mut Client, text: &str) {
    client.send_text(text).unwrap();
    match client.recv().unwrap() {
        Event::Message(Message::Text(t)) => assert_eq!(t, text),
        other => panic!("{other:?}"),
    }
}

fn echo_with_tls(dir: &Path) -> Running {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    Running::start(
        &[
            "echo",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        "wss",
        dir,
    )
}

#[test]
fn echo_and_client_commands_speak_wss() {
    let dir = temp_dir("commands");
    Ca::new("test CA").write(&dir);
    let echo = echo_with_tls(&dir);
    let url = format!("wss://localhost:{}/", echo.addr.port());
    let run = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
            .arg("client")
            .arg(&url)
            .args(args)
            .args(["--wait", "0.5"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"over tls\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let ca = dir.join("ca.pem");
    let out = run(&["--ca", ca.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over tls\n");

    // Without the CA: the Mozilla roots do not know it, and the error says so.
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("issuer is unknown"), "{stderr}");

    // --insecure gets through, with a warning.
    let out = run(&["--insecure"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("WARNING"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over tls\n");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_live_connections() {
    let dir = temp_dir("sighup");
    Ca::new("first CA").write(&dir);
    let first = trusting(&dir);
    let echo = echo_with_tls(&dir);
    let url = format!("wss://localhost:{}/", echo.addr.port());
    let mut live = Client::connect_with(&url, &first).unwrap();
    echoes(&mut live, "before");

    Ca::new("second CA").write(&dir);
    let second = trusting(&dir);
    echo.hangup();
    echo.await_log("reloaded the TLS certificate");
    let mut fresh = Client::connect_with(&url, &second).unwrap();
    echoes(&mut fresh, "new certificate");
    echoes(&mut live, "still here");
    assert!(Client::connect_with(&url, &first).is_err());

    // A key that does not belong to the certificate: refused, logged, the second pair kept.
    let other = KeyPair::generate().unwrap();
    std::fs::write(dir.join("key.pem"), other.serialize_pem()).unwrap();
    echo.hangup();
    echo.await_log("kept the old TLS certificate");
    assert!(
        echo.stderr().contains("does not belong"),
        "{}",
        echo.stderr()
    );
    let mut after = Client::connect_with(&url, &second).unwrap();
    echoes(&mut after, "old pair kept");
    echoes(&mut live, "and still here");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn serve_speaks_https_and_wss() {
    let dir = temp_dir("serve");
    Ca::new("test CA").write(&dir);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let serve = Running::start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        "https",
        &dir,
    );
    // https://…/healthz with a TLS stream of our own.
    let config = {
        let mut roots = rfc6455::tls::rustls::RootCertStore::empty();
        for c in rfc6455::tls::load_certs(dir.join("ca.pem")).unwrap() {
            roots.add(c).unwrap();
        }
        let provider = rfc6455::tls::rustls::crypto::aws_lc_rs::default_provider();
        rfc6455::tls::rustls::ClientConfig::builder_with_provider(provider.into())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    };
    let name = "localhost".try_into().unwrap();
    let conn = rfc6455::tls::rustls::ClientConnection::new(config.into(), name).unwrap();
    let tcp = std::net::TcpStream::connect(serve.addr).unwrap();
    tcp.set_read_timeout(Some(BOUND)).unwrap();
    let mut tls = rfc6455::tls::rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // The chat's WebSocket over wss://.
    let url = format!("wss://localhost:{}/ws?nick=ann", serve.addr.port());
    let client = Client::connect_with(&url, &trusting(&dir));
    assert!(client.is_ok(), "{:?}", client.err());
    let _ = std::fs::remove_dir_all(dir);
}

/// python `websockets` (with an `ssl.SSLContext` trusting the test CA) against `rfc6455 echo
/// --tls-cert`: text and a 1 MiB binary message echoed, a clean close. Needs a Python with
/// `websockets`: `RFC6455_PYTHON=/path/to/python`; .ci/run installs one in a venv.
#[test]
#[ignore = "needs python websockets: run by .ci/run with RFC6455_PYTHON set"]
fn python_websockets_echoes_over_wss() {
    let python = std::env::var("RFC6455_PYTHON").expect("RFC6455_PYTHON: a python with websockets");
    let dir = temp_dir("python");
    Ca::new("test CA").write(&dir);
    let echo = echo_with_tls(&dir);
    let script = r#"
import asyncio, ssl, sys
import websockets

async def main(url, ca):
    context = ssl.create_default_context(cafile=ca)
    async with websockets.connect(url, ssl=context, max_size=None) as ws:
        await ws.send("hello from python")
        assert await ws.recv() == "hello from python"
        big = bytes(i % 251 for i in range(1 << 20))
        await ws.send(big)
        assert await ws.recv() == big
        version = ws.transport.get_extra_info("ssl_object").version()
        print("ok", version)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;
    let url = format!("wss://localhost:{}/", echo.addr.port());
    let out = Command::new(python)
        .args(["-c", script, &url, dir.join("ca.pem").to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("ok TLSv1."), "{stdout}");
    eprintln!("python websockets: {stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn load_runs_over_wss() {
    let dir = temp_dir("load");
    Ca::new("test CA").write(&dir);
    let echo = echo_with_tls(&dir);
    let url = format!("wss://localhost:{}/", echo.addr.port());
    let ca = dir.join("ca.pem");
    for extra in [
        &["-s", "20"][..],
        &["-s", "3000", "--binary", "--depth", "4", "--threads", "2"],
        &["-s", "100000", "--binary", "--depth", "3"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
            .args(["load", &url, "--ca", ca.to_str().unwrap()])
            .args(["-c", "8", "-d", "1", "--warmup", "0.2"])
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{extra:?}: {stdout}{stderr}");
        assert!(stdout.contains("errors       none"), "{extra:?}: {stdout}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `load --churn` over wss://: connections are made again and again, each slot resumes its
/// previous connection's TLS session, and `--no-resume` makes every handshake a full one.
#[test]
fn load_churn_counts_new_tls_connections_with_and_without_resumption() {
    let dir = temp_dir("churn");
    Ca::new("test CA").write(&dir);
    let echo = echo_with_tls(&dir);
    let url = format!("wss://localhost:{}/", echo.addr.port());
    let ca = dir.join("ca.pem");
    // "N of the M TLS handshakes of the run resumed a session" and "K opened, …".
    let figures = |stdout: &str| -> (u64, u64, u64) {
        let line = stdout
            .lines()
            .find(|l| l.starts_with("new conns"))
            .unwrap_or_else(|| panic!("no 'new conns' line in {stdout}"));
        let numbers: Vec<u64> = line
            .split([' ', ';'])
            .filter_map(|w| w.replace(',', "").parse().ok())
            .collect();
        // opened, connections/s, resumed, of (the seconds are "1.00": not a whole number).
        assert_eq!(numbers.len(), 4, "{line}");
        (numbers[0], numbers[2], numbers[3])
    };
    for resume in [true, false] {
        let out = Command::new(env!("CARGO_BIN_EXE_rfc6455"))
            .args(["load", &url, "--ca", ca.to_str().unwrap(), "--churn"])
            .args(["-c", "4", "-d", "1", "--warmup", "0.3"])
            .args(if resume { &[][..] } else { &["--no-resume"] })
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "resume {resume}: {stdout}{stderr}");
        assert!(stdout.contains("errors       none"), "{stdout}");
        let (opened, resumed, handshakes) = figures(&stdout);
        // Far more connections than slots: they were made again.
        assert!(
            opened > 8,
            "resume {resume}: only {opened} cycles: {stdout}"
        );
        if resume {
            // Only each slot's first handshake is a full one.
            assert!(
                resumed + 4 >= handshakes && resumed > 0,
                "{resumed} of {handshakes} resumed: {stdout}"
            );
        } else {
            assert_eq!(resumed, 0, "{stdout}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
