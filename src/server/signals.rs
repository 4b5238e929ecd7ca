//! SIGINT/SIGTERM (shutdown) and SIGHUP (with TLS, certificate reload; without, a log line).

use super::event_loop::TlsOption;
use super::Handle;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle as SignalsHandle, Signals};
use std::io;

/// Watches SIGINT/SIGTERM on a thread: the first starts a graceful shutdown, a second
/// exits at once. SIGHUP reloads the TLS certificate and key; without TLS there is nothing
/// to reload, and the server says so and goes on (rather than dying of it, the default for a
/// process that does not handle it: `kill -HUP` sent to every `rfc6455` by name would take a
/// plain server down).
#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
pub(super) fn watch(handle: Handle, tls: TlsOption) -> io::Result<SignalsHandle> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let control = signals.handle();
    std::thread::Builder::new()
        .name("rfc6455-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                if signal == SIGHUP {
                    #[cfg(feature = "tls")]
                    if let Some(tls) = &tls {
                        reload(tls);
                        continue;
                    }
                    eprintln!("rfc6455: SIGHUP: no TLS certificate to reload; still serving");
                    continue;
                }
                seen += 1;
                if seen > 1 {
                    std::process::exit(130);
                }
                handle.shutdown();
            }
        })?;
    Ok(control)
}

/// SIGHUP: the new certificate and key for new handshakes, or a line saying why not.
#[cfg(feature = "tls")]
fn reload(tls: &crate::tls::TlsConfig) {
    match tls.reload() {
        Ok(Some((cert, key))) => eprintln!(
            "rfc6455: SIGHUP: reloaded the TLS certificate {} and key {}; new \
             connections use them, open ones are kept",
            cert.display(),
            key.display()
        ),
        Ok(None) => eprintln!(
            "rfc6455: SIGHUP: this TLS configuration was not made from files; nothing to \
             reload"
        ),
        Err(e) => eprintln!(
            "rfc6455: SIGHUP: kept the old TLS certificate and key, the new ones are \
             refused: {e}"
        ),
    }
}
