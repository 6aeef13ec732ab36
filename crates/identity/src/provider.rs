//! The identity provider: accounts, passwords and token issuance behind one handle.
//!
//! Every method is synchronous and may block (SQLite, argon2, RSA); async callers run them
//! on a blocking thread, as the HTTP layer does.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::account::validate_name;
use crate::db::Db;
use crate::key::{Jwks, SigningKey};
use crate::token::{AUDIENCE, AccessTokenClaims, CLIENT_ID, validate_scope};
use crate::{Account, IdentityError, password, token};

/// File name of the accounts database inside the data directory.
const ACCOUNTS_DB: &str = "accounts.db";

/// The built-in identity provider. Cloning is cheap and clones share everything.
#[derive(Clone)]
pub struct IdentityProvider {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    db: Db,
    key: SigningKey,
}

/// The outcome of a password check, with the reason for a refusal so the HTTP layer can
/// log it. Clients are only ever told that the credentials were wrong.
pub(crate) enum Login {
    Accepted(Account),
    NoSuchAccount,
    NoPassword,
    WrongPassword,
}

impl IdentityProvider {
    /// Opens the provider kept in `data_dir`, which must exist: opens or creates
    /// `accounts.db`, and loads `identity-key.pem` or generates it (RSA 2048, which can take
    /// a second). Tokens name `issuer` as their `iss`; use the URL the token server knows
    /// this issuer by.
    pub fn open(data_dir: &Path, issuer: &str) -> Result<Self, IdentityError> {
        let db = Db::open(&data_dir.join(ACCOUNTS_DB))?;
        let key = SigningKey::load_or_create(data_dir)?;
        tracing::debug!(issuer, kid = key.kid(), "identity provider ready");
        Ok(IdentityProvider {
            inner: Arc::new(Inner {
                issuer: issuer.to_owned(),
                db,
                key,
            }),
        })
    }

    /// The `iss` of every token issued.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The id of the signing key, the `kid` of every token issued.
    pub fn kid(&self) -> &str {
        self.inner.key.kid()
    }

    /// The public key set that verifies this provider's tokens.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: vec![self.inner.key.jwk().clone()],
        }
    }

    /// Creates an account with a random uid and the current time as its generation. With
    /// no password, the account cannot log in over HTTP; tokens can still be issued for it
    /// with [`issue_token`](Self::issue_token).
    pub fn add_account(
        &self,
        name: &str,
        password: Option<&str>,
    ) -> Result<Account, IdentityError> {
        validate_name(name)?;
        let password_hash = password.map(hash_password).transpose()?;
        let now = now_ms();
        let account = Account {
            name: name.to_owned(),
            uid: hex::encode(rand::random::<[u8; 16]>()),
            generation: now,
            has_password: password_hash.is_some(),
            created_at: now / 1000,
        };
        self.inner.db.insert(&account, password_hash.as_deref())?;
        tracing::info!(account = name, uid = %account.uid, "created account");
        Ok(account)
    }

    /// The named account, if it exists.
    pub fn account(&self, name: &str) -> Result<Option<Account>, IdentityError> {
        Ok(self.inner.db.get(name)?.map(|stored| stored.account))
    }

    /// Every account, sorted by name.
    pub fn list_accounts(&self) -> Result<Vec<Account>, IdentityError> {
        self.inner.db.list()
    }

    /// Deletes the named account; false if there was none. Tokens already issued for it
    /// stay valid until they expire.
    pub fn remove_account(&self, name: &str) -> Result<bool, IdentityError> {
        let removed = self.inner.db.delete(name)?;
        if removed {
            tracing::info!(account = name, "removed account");
        }
        Ok(removed)
    }

    /// Sets or replaces the account's password. This does not change the generation, so
    /// tokens already issued stay valid; call [`bump_generation`](Self::bump_generation)
    /// as well to revoke them.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), IdentityError> {
        let hash = hash_password(password)?;
        if !self.inner.db.set_password_hash(name, &hash)? {
            return Err(IdentityError::NoSuchAccount(name.to_owned()));
        }
        tracing::info!(account = name, "set account password");
        Ok(())
    }

    /// The account, if `password` is its password. An unknown name, an account without a
    /// password and a wrong password all give `None`, after about the same time.
    pub fn verify_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<Account>, IdentityError> {
        match self.login(name, password)? {
            Login::Accepted(account) => Ok(Some(account)),
            Login::NoSuchAccount | Login::NoPassword | Login::WrongPassword => Ok(None),
        }
    }

    /// Records a credential change: the generation becomes the current time in
    /// milliseconds (or one more than before, if that is not later). Once the token server
    /// has seen a token with the new generation, it refuses tokens issued before.
    pub fn bump_generation(&self, name: &str) -> Result<Account, IdentityError> {
        let account = self
            .inner
            .db
            .bump_generation(name, now_ms())?
            .ok_or_else(|| IdentityError::NoSuchAccount(name.to_owned()))?;
        tracing::info!(
            account = name,
            generation = account.generation,
            "bumped account generation"
        );
        Ok(account)
    }

    /// Signs an access token for the named account, valid for `duration` (whole seconds,
    /// at least one) from now. No password is needed: this is the operator's API.
    pub fn issue_token(
        &self,
        name: &str,
        scope: &str,
        duration: Duration,
    ) -> Result<String, IdentityError> {
        let account = self
            .account(name)?
            .ok_or_else(|| IdentityError::NoSuchAccount(name.to_owned()))?;
        self.issue_for(&account, scope, duration)
    }

    /// Signs `claims` as an RS256 `at+jwt` with this provider's key, whatever their `iss`,
    /// `aud` and lifetime. This is how the accounts service issues Mozilla-style access
    /// tokens without a second key: verifiers that already trust this provider's JWKS
    /// (the token server) only need to be told the other issuer name.
    pub fn sign_claims(&self, claims: &AccessTokenClaims) -> Result<String, IdentityError> {
        validate_scope(&claims.scope)?;
        token::sign(&self.inner.key, claims)
    }

    /// Checks a password, saying why a login was refused.
    pub(crate) fn login(&self, name: &str, password: &str) -> Result<Login, IdentityError> {
        let Some(stored) = self.inner.db.get(name)? else {
            password::burn(password);
            return Ok(Login::NoSuchAccount);
        };
        let Some(hash) = stored.password_hash else {
            password::burn(password);
            return Ok(Login::NoPassword);
        };
        if password::verify(password, &hash) {
            Ok(Login::Accepted(stored.account))
        } else {
            Ok(Login::WrongPassword)
        }
    }

    /// Signs an access token for `account` as it was read.
    pub(crate) fn issue_for(
        &self,
        account: &Account,
        scope: &str,
        duration: Duration,
    ) -> Result<String, IdentityError> {
        validate_scope(scope)?;
        if duration.as_secs() == 0 {
            return Err(IdentityError::InvalidDuration);
        }
        let iat = now_ms() / 1000;
        let claims = AccessTokenClaims {
            iss: self.inner.issuer.clone(),
            sub: account.uid.clone(),
            aud: AUDIENCE.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            iat,
            exp: iat.saturating_add(duration.as_secs()),
            jti: hex::encode(rand::random::<[u8; 16]>()),
            scope: scope.to_owned(),
            fxa_generation: account.generation,
        };
        token::sign(&self.inner.key, &claims)
    }
}

impl fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("issuer", &self.inner.issuer)
            .field("kid", &self.inner.key.kid())
            .finish_non_exhaustive()
    }
}

fn hash_password(password: &str) -> Result<String, IdentityError> {
    if password.is_empty() {
        return Err(IdentityError::EmptyPassword);
    }
    password::hash(password)
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::LazyLock;

    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use rsa::RsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use tempfile::TempDir;

    use super::*;
    use crate::SYNC_SCOPE;
    use crate::key::KEY_FILE;

    const ISSUER: &str = "https://sync.example.test/identity";

    /// One key for the whole test run: generating one per test would dominate its time.
    pub(crate) fn test_key_pem() -> String {
        static PEM: LazyLock<String> = LazyLock::new(|| {
            let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
            key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
        });
        PEM.clone()
    }

    fn open() -> (TempDir, IdentityProvider) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), test_key_pem()).unwrap();
        let idp = IdentityProvider::open(dir.path(), ISSUER).unwrap();
        (dir, idp)
    }

    fn decode(idp: &IdentityProvider, token: &str) -> AccessTokenClaims {
        let jwks = idp.jwks();
        let header = jsonwebtoken::decode_header(token).unwrap();
        let jwk = jwks
            .keys
            .iter()
            .find(|jwk| Some(&jwk.kid) == header.kid.as_ref())
            .expect("the token's kid is in the JWKS");
        let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &validation)
            .unwrap()
            .claims
    }

    #[test]
    fn adds_lists_and_removes_accounts() {
        let (_dir, idp) = open();
        let before = now_ms();
        let alice = idp.add_account("alice", Some("pw")).unwrap();
        let bob = idp.add_account("bob", None).unwrap();
        assert_eq!(alice.uid.len(), 32);
        assert!(
            alice
                .uid
                .chars()
                .all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        );
        assert_ne!(alice.uid, bob.uid);
        assert!(alice.generation >= before && alice.generation <= now_ms());
        assert!(alice.has_password && !bob.has_password);
        assert_eq!(alice.created_at, alice.generation / 1000);

        assert_eq!(idp.list_accounts().unwrap(), vec![alice.clone(), bob]);
        assert_eq!(idp.account("alice").unwrap(), Some(alice));
        assert!(idp.remove_account("bob").unwrap());
        assert!(!idp.remove_account("bob").unwrap());
        assert_eq!(idp.list_accounts().unwrap().len(), 1);
        assert_eq!(idp.account("bob").unwrap(), None);
    }

    #[test]
    fn refuses_duplicates_bad_names_and_empty_passwords() {
        let (_dir, idp) = open();
        idp.add_account("alice", None).unwrap();
        assert!(matches!(
            idp.add_account("alice", Some("pw")),
            Err(IdentityError::AccountExists(name)) if name == "alice"
        ));
        assert!(matches!(
            idp.add_account("al ice", None),
            Err(IdentityError::InvalidName(_))
        ));
        assert!(matches!(
            idp.add_account("carol", Some("")),
            Err(IdentityError::EmptyPassword)
        ));
        assert!(matches!(
            idp.set_password("alice", ""),
            Err(IdentityError::EmptyPassword)
        ));
        assert!(matches!(
            idp.set_password("nobody", "pw"),
            Err(IdentityError::NoSuchAccount(_))
        ));
        assert_eq!(idp.list_accounts().unwrap().len(), 1);
    }

    #[test]
    fn verifies_passwords() {
        let (_dir, idp) = open();
        let alice = idp.add_account("alice", Some("hunter2")).unwrap();
        idp.add_account("bob", None).unwrap();
        assert_eq!(
            idp.verify_password("alice", "hunter2").unwrap(),
            Some(alice)
        );
        assert_eq!(idp.verify_password("alice", "hunter3").unwrap(), None);
        assert_eq!(idp.verify_password("Alice", "hunter2").unwrap(), None);
        assert_eq!(idp.verify_password("nobody", "hunter2").unwrap(), None);
        assert_eq!(idp.verify_password("bob", "").unwrap(), None);

        idp.set_password("bob", "new one").unwrap();
        assert!(idp.account("bob").unwrap().unwrap().has_password);
        assert!(idp.verify_password("bob", "new one").unwrap().is_some());
        idp.set_password("alice", "changed").unwrap();
        assert_eq!(idp.verify_password("alice", "hunter2").unwrap(), None);
        assert!(idp.verify_password("alice", "changed").unwrap().is_some());
    }

    #[test]
    fn never_stores_passwords_in_clear() {
        let (dir, idp) = open();
        let secret = "Pl41n-T3xt-Passw0rd-Marker";
        idp.add_account("alice", Some(secret)).unwrap();
        idp.add_account("bob", None).unwrap();
        idp.set_password("bob", secret).unwrap();
        let check_files = || {
            let mut checked = 0;
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                let found = bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes());
                assert!(!found, "{} contains the password", path.display());
                checked += 1;
            }
            checked
        };
        // While open, the rows may still be in the write-ahead log; after closing, they
        // have been checkpointed into the database file.
        assert!(
            check_files() >= 3,
            "the database, its log and the key were checked"
        );
        drop(idp);
        assert!(check_files() >= 2, "the database and the key were checked");
    }

    #[test]
    fn database_and_key_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let idp = IdentityProvider::open(dir.path(), ISSUER).unwrap();
        idp.add_account("alice", Some("pw")).unwrap();
        for name in [ACCOUNTS_DB, KEY_FILE] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn reopening_keeps_accounts_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = IdentityProvider::open(dir.path(), ISSUER).unwrap();
        let alice = first.add_account("alice", Some("pw")).unwrap();
        let kid = first.kid().to_owned();
        let jwks = first.jwks();
        let token = first
            .issue_token("alice", SYNC_SCOPE, Duration::from_secs(60))
            .unwrap();
        drop(first);

        let second = IdentityProvider::open(dir.path(), ISSUER).unwrap();
        assert_eq!(second.kid(), kid);
        assert_eq!(second.jwks(), jwks);
        assert_eq!(second.account("alice").unwrap(), Some(alice));
        assert_eq!(
            decode(&second, &token).sub.len(),
            32,
            "old tokens still verify"
        );
    }

    #[test]
    fn issues_verifiable_tokens() {
        let (_dir, idp) = open();
        let alice = idp.add_account("alice", None).unwrap();
        let token = idp
            .issue_token("alice", SYNC_SCOPE, Duration::from_secs(600))
            .unwrap();

        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(idp.kid()));

        let claims = decode(&idp, &token);
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.sub, alice.uid);
        assert_eq!(claims.aud, "syncstack");
        assert_eq!(claims.client_id, "syncstack");
        assert_eq!(claims.scope, SYNC_SCOPE);
        assert_eq!(claims.exp - claims.iat, 600);
        assert!(claims.iat.abs_diff(now_ms() / 1000) <= 5);
        assert_eq!(claims.jti.len(), 32);
        assert_eq!(claims.fxa_generation, alice.generation);

        let again = idp
            .issue_token("alice", SYNC_SCOPE, Duration::from_secs(600))
            .unwrap();
        assert_ne!(decode(&idp, &again).jti, claims.jti);
    }

    #[test]
    fn signs_claims_of_another_issuer_with_the_same_key() {
        let (_dir, idp) = open();
        let claims = AccessTokenClaims {
            iss: "https://accounts.example.test".into(),
            sub: "ab".repeat(16),
            aud: "https://sync.example.test".into(),
            client_id: "5882386c6d801776".into(),
            iat: now_ms() / 1000,
            exp: now_ms() / 1000 + 60,
            jti: "cd".repeat(16),
            scope: SYNC_SCOPE.into(),
            fxa_generation: 7,
        };
        let token = idp.sign_claims(&claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(idp.kid()));
        let jwk = &idp.jwks().keys[0];
        let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&["https://accounts.example.test"]);
        validation.set_audience(&["https://sync.example.test"]);
        let decoded = jsonwebtoken::decode::<AccessTokenClaims>(&token, &key, &validation);
        assert_eq!(decoded.unwrap().claims, claims);
        let bad_scope = AccessTokenClaims {
            scope: String::new(),
            ..claims
        };
        assert!(matches!(
            idp.sign_claims(&bad_scope),
            Err(IdentityError::InvalidScope(_))
        ));
    }

    #[test]
    fn tokens_from_another_key_do_not_verify() {
        let (_dir, idp) = open();
        let other_dir = tempfile::tempdir().unwrap();
        let other = IdentityProvider::open(other_dir.path(), ISSUER).unwrap();
        other.add_account("alice", None).unwrap();
        let token = other
            .issue_token("alice", SYNC_SCOPE, Duration::from_secs(60))
            .unwrap();
        let jwk = &idp.jwks().keys[0];
        let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[AUDIENCE]);
        assert!(jsonwebtoken::decode::<AccessTokenClaims>(&token, &key, &validation).is_err());
    }

    #[test]
    fn refuses_bad_token_requests() {
        let (_dir, idp) = open();
        idp.add_account("alice", None).unwrap();
        assert!(matches!(
            idp.issue_token("nobody", SYNC_SCOPE, Duration::from_secs(60)),
            Err(IdentityError::NoSuchAccount(_))
        ));
        assert!(matches!(
            idp.issue_token("alice", "", Duration::from_secs(60)),
            Err(IdentityError::InvalidScope(_))
        ));
        assert!(matches!(
            idp.issue_token("alice", SYNC_SCOPE, Duration::from_millis(999)),
            Err(IdentityError::InvalidDuration)
        ));
    }

    #[test]
    fn bumping_the_generation_moves_it_forward() {
        let (_dir, idp) = open();
        let alice = idp.add_account("alice", Some("pw")).unwrap();
        let first = idp.bump_generation("alice").unwrap();
        let second = idp.bump_generation("alice").unwrap();
        assert!(first.generation > alice.generation);
        assert!(
            second.generation > first.generation,
            "strictly, even within a millisecond"
        );
        assert_eq!(
            idp.account("alice").unwrap().unwrap().generation,
            second.generation
        );
        assert!(
            idp.verify_password("alice", "pw").unwrap().is_some(),
            "password kept"
        );

        let token = idp
            .issue_token("alice", SYNC_SCOPE, Duration::from_secs(60))
            .unwrap();
        assert_eq!(decode(&idp, &token).fxa_generation, second.generation);
        assert!(matches!(
            idp.bump_generation("nobody"),
            Err(IdentityError::NoSuchAccount(_))
        ));
    }

    #[test]
    fn debug_shows_no_key() {
        let (_dir, idp) = open();
        let debug = format!("{idp:?}");
        assert!(debug.contains(ISSUER) && debug.contains(idp.kid()));
        assert!(!debug.contains("PRIVATE"));
    }
}
