//! `syncstack pair`: move a logged-in client's credentials to a new device by a short code.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use easysetup::pairing::{self, PairingEvent, Timing};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{PairArgs, PairCommand};
use crate::commands::client::Profile;

fn timing(args: &PairArgs) -> Timing {
    Timing {
        poll_interval: Duration::from_millis(args.poll_ms.max(10)),
        join_timeout: Duration::from_secs(args.timeout_secs),
        step_timeout: Duration::from_secs(args.timeout_secs.min(60)),
    }
}

fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
    );
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs `pair offer` or `pair accept`.
pub async fn run(args: PairArgs) -> anyhow::Result<()> {
    let path = args.profile.clone().unwrap_or_else(Profile::default_path);
    match &args.command {
        PairCommand::Offer => {
            let profile = Profile::load(&path)?;
            let server = args
                .server
                .clone()
                .unwrap_or_else(|| profile.server_base_url());
            let credentials = serde_json::to_value(&profile)?;
            let mut bar: Option<ProgressBar> = None;
            pairing::offer(&server, &credentials, timing(&args), |event| match event {
                PairingEvent::Code(code) => {
                    println!("On the new device, run:\n\n    syncstack pair accept {code} --server {server}\n");
                    let _ = std::io::stdout().flush();
                    bar = Some(spinner("waiting for the new device"));
                }
                PairingEvent::PeerJoined => {
                    if let Some(bar) = &bar {
                        bar.set_message("the new device joined; exchanging keys");
                    }
                }
                PairingEvent::KeyConfirmed => {
                    if let Some(bar) = &bar {
                        bar.set_message("codes match; sending the credentials");
                    }
                }
                PairingEvent::Done => {
                    if let Some(bar) = bar.take() {
                        bar.finish_and_clear();
                    }
                }
            })
            .await
            .context("pairing failed")?;
            println!("the new device has your Sync credentials");
            Ok(())
        }
        PairCommand::Accept { code } => {
            let server = args.server.clone().context("--server URL is needed: the address of the syncstack server the other device showed")?;
            let bar = spinner("exchanging keys with the other device");
            let received = pairing::accept(&server, code, timing(&args), |event| {
                if event == PairingEvent::KeyConfirmed {
                    bar.set_message("codes match; receiving the credentials");
                }
            })
            .await;
            bar.finish_and_clear();
            let received = received.context("pairing failed")?;
            let profile: Profile = serde_json::from_value(received)
                .context("the other device sent something that is not a login")?;
            let client = profile.client(true)?;
            client
                .ensure_ready()
                .await
                .context("the received login does not work")?;
            profile.save(&path)?;
            println!(
                "paired: logged in, storage at {}; the login is in {}",
                client.storage().endpoint().await?,
                path.display()
            );
            Ok(())
        }
    }
}
