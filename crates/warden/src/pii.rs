//! `warden pii`: make keys for the hash and encrypt actions, and decrypt what `encrypt` produced,
//! for the back office that is allowed to see it.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use warden_gateway::Config;
use warden_policy::pii::protect::{decrypt, encrypted_key_id};

use crate::cli::{Failure, PiiCommand};

pub fn run(cmd: PiiCommand) -> Result<(), Failure> {
    match cmd {
        PiiCommand::Keygen => {
            let mut key = [0u8; 32];
            SystemRandom::new().fill(&mut key).map_err(|_| {
                Failure::Runtime(anyhow::anyhow!("the system random source failed"))
            })?;
            crate::out(key.iter().map(|b| format!("{b:02x}")).collect::<String>());
            Ok(())
        }
        PiiCommand::Decrypt(args) => {
            let cfg = Config::load(&args.config).map_err(|e| Failure::BadInput(e.to_string()))?;
            let keys = cfg
                .data_protection
                .keys
                .encryption
                .as_ref()
                .ok_or_else(|| {
                    Failure::BadInput(format!(
                        "{}: data_protection.keys.encryption is not set",
                        args.config.display()
                    ))
                })?;
            for value in &args.values {
                let kid = encrypted_key_id(value).ok_or_else(|| {
                    Failure::BadInput("a value does not start with `enc:v1:<key id>:`".into())
                })?;
                let source = keys.keys.get(kid).ok_or_else(|| {
                    Failure::BadInput(format!(
                        "key id `{kid}` is not in the config's encryption keys"
                    ))
                })?;
                let key = source.load().map_err(Failure::BadInput)?;
                let plain = decrypt(value, &key).map_err(|_| {
                    Failure::BadInput(format!(
                        "a value under key `{kid}` does not decrypt: wrong key, or the value was altered"
                    ))
                })?;
                crate::out(&plain);
            }
            Ok(())
        }
    }
}
