//! The channels themselves: a bounded map from channel id to body, guarded by one mutex.
//!
//! Every operation takes `now` from its caller, so that expiry can be tested without
//! sleeping. No operation awaits while holding the lock.
//!
//! **Invariant:** every path that touches a channel goes through [`Channels::admit`],
//! which drops an expired channel and destroys one that a third client id reaches.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use super::error::ChannelError;
use super::ids::{ChannelId, ClientId, ETag};
use super::settings::ChannelSettings;

/// Draws of a random id before creation gives up with 503, as in the reference server.
const MAX_ID_TRIES: usize = 100;

/// The body of a channel nobody has written to yet.
const EMPTY_BODY: &[u8] = b"{}";

/// What a GET found.
#[derive(Debug)]
pub(crate) enum Read {
    /// 200: the body, and its tag unless nothing was PUT yet.
    Body { body: Bytes, etag: Option<ETag> },
    /// 304: the client already has this body.
    NotModified(ETag),
}

/// The conditional header a PUT carried. `If-Match` wins when both are sent, as in the
/// reference server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutCondition<'a> {
    /// Neither header: the PUT always applies.
    None,
    /// `If-Match`: `*` or a list of tags, one of which must be the current body's.
    IfMatch(&'a str),
    /// `If-None-Match`: `*` applies only to a channel never written; a list of tags
    /// applies only if the current body's tag is not among them.
    IfNoneMatch(&'a str),
}

/// Whether a report deleted the channel it named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportDeletion {
    /// The channel existed and the reporter was registered on it.
    Deleted,
    /// The channel existed but the reporter was not one of its clients.
    NotRegistered,
    /// No such live channel.
    Unknown,
}

/// All live channels.
pub(crate) struct Channels {
    map: Mutex<HashMap<ChannelId, Channel>>,
    ttl: Duration,
    max_gets: u32,
    max_channels: usize,
    id_length: usize,
}

struct Channel {
    body: Bytes,
    /// `None` until the first PUT: a fresh channel is served without an ETag.
    etag: Option<ETag>,
    /// The first two distinct client ids seen; never more than two.
    clients: Vec<ClientId>,
    gets: u32,
    created: Instant,
}

impl Channel {
    fn new(first_client: ClientId, now: Instant) -> Self {
        Channel {
            body: Bytes::from_static(EMPTY_BODY),
            etag: None,
            clients: vec![first_client],
            gets: 0,
            created: now,
        }
    }

    fn expired(&self, ttl: Duration, now: Instant) -> bool {
        now.saturating_duration_since(self.created) >= ttl
    }

    /// Registers `client` if there is room; false for a third id.
    fn register(&mut self, client: &ClientId) -> bool {
        if self.clients.contains(client) {
            true
        } else if self.clients.len() < 2 {
            self.clients.push(client.clone());
            true
        } else {
            false
        }
    }
}

impl Channels {
    pub(crate) fn new(settings: &ChannelSettings) -> Self {
        Channels {
            map: Mutex::new(HashMap::new()),
            ttl: settings.channel_ttl(),
            max_gets: settings.max_gets,
            max_channels: settings.max_channels,
            id_length: settings.channel_id_length,
        }
    }

    /// Creates a channel with `client` as its first client. Expired channels are swept
    /// first, so abandoned channels never hold memory past their TTL for long.
    pub(crate) fn create(&self, client: ClientId, now: Instant) -> Result<ChannelId, ChannelError> {
        let mut map = self.lock();
        map.retain(|_, channel| !channel.expired(self.ttl, now));
        if map.len() >= self.max_channels {
            return Err(ChannelError::Full);
        }
        for _ in 0..MAX_ID_TRIES {
            let id = ChannelId::random(self.id_length);
            if !map.contains_key(&id) {
                map.insert(id.clone(), Channel::new(client, now));
                return Ok(id);
            }
        }
        Err(ChannelError::NoFreeId)
    }

    /// Registers `client` on the channel without reading or writing it. Used before a
    /// request's body is read, so that a third party is caught even if its body is refused.
    pub(crate) fn admit(
        &self,
        id: &ChannelId,
        client: &ClientId,
        now: Instant,
    ) -> Result<(), ChannelError> {
        self.with_channel(&mut self.lock(), id, client, now, |_| ())
    }

    /// Reads the channel. Each 200 counts toward `max_gets`, and the read that reaches it
    /// deletes the channel; a 304 does not count.
    pub(crate) fn read(
        &self,
        id: &ChannelId,
        client: &ClientId,
        if_none_match: Option<&str>,
        now: Instant,
    ) -> Result<Read, ChannelError> {
        let mut map = self.lock();
        let max_gets = self.max_gets;
        let (read, exhausted) = self.with_channel(&mut map, id, client, now, |channel| {
            if let (Some(etag), Some(header)) = (&channel.etag, if_none_match)
                && (header.trim() == "*" || etag.listed_in(header))
            {
                return (Read::NotModified(etag.clone()), false);
            }
            channel.gets += 1;
            let read = Read::Body {
                body: channel.body.clone(),
                etag: channel.etag.clone(),
            };
            (read, channel.gets >= max_gets)
        })?;
        if exhausted {
            map.remove(id);
            tracing::debug!(channel = %id, "channel deleted after its last allowed GET");
        }
        Ok(read)
    }

    /// Replaces the channel's body if `condition` holds, returning the new body's tag.
    /// `etag` is the tag of `body`, computed by the caller outside the lock.
    pub(crate) fn write(
        &self,
        id: &ChannelId,
        client: &ClientId,
        condition: PutCondition<'_>,
        body: Bytes,
        etag: ETag,
        now: Instant,
    ) -> Result<ETag, ChannelError> {
        self.with_channel(&mut self.lock(), id, client, now, |channel| {
            let applies = match (condition, &channel.etag) {
                (PutCondition::None, _) => true,
                (PutCondition::IfMatch(h), _) if h.trim() == "*" => true,
                (PutCondition::IfMatch(h), Some(current)) => current.listed_in(h),
                (PutCondition::IfMatch(_), None) => false,
                (PutCondition::IfNoneMatch(h), current) if h.trim() == "*" => current.is_none(),
                (PutCondition::IfNoneMatch(h), Some(current)) => !current.listed_in(h),
                (PutCondition::IfNoneMatch(_), None) => true,
            };
            if !applies {
                return Err(ChannelError::PreconditionFailed { attempted: etag });
            }
            channel.body = body;
            channel.etag = Some(etag.clone());
            Ok(etag)
        })?
    }

    /// Deletes the channel on behalf of one of its clients.
    pub(crate) fn delete(
        &self,
        id: &ChannelId,
        client: &ClientId,
        now: Instant,
    ) -> Result<(), ChannelError> {
        let mut map = self.lock();
        self.with_channel(&mut map, id, client, now, |_| ())?;
        map.remove(id);
        Ok(())
    }

    /// Deletes the channel if `client` is already registered on it; a report never
    /// registers anyone.
    pub(crate) fn delete_reported(
        &self,
        id: &ChannelId,
        client: &ClientId,
        now: Instant,
    ) -> ReportDeletion {
        let mut map = self.lock();
        match map.get(id) {
            Some(channel) if channel.expired(self.ttl, now) => {
                map.remove(id);
                ReportDeletion::Unknown
            }
            Some(channel) if channel.clients.contains(client) => {
                map.remove(id);
                ReportDeletion::Deleted
            }
            Some(_) => ReportDeletion::NotRegistered,
            None => ReportDeletion::Unknown,
        }
    }

    /// Deletes the channel unconditionally; true if it existed.
    pub(crate) fn destroy(&self, id: &ChannelId) -> bool {
        self.lock().remove(id).is_some()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Runs `f` on the live channel `id` after registering `client`. An expired channel is
    /// removed and reported unknown; a third client id removes the channel.
    fn with_channel<T>(
        &self,
        map: &mut HashMap<ChannelId, Channel>,
        id: &ChannelId,
        client: &ClientId,
        now: Instant,
        f: impl FnOnce(&mut Channel) -> T,
    ) -> Result<T, ChannelError> {
        let channel = map.get_mut(id).ok_or(ChannelError::UnknownChannel)?;
        if channel.expired(self.ttl, now) {
            map.remove(id);
            return Err(ChannelError::UnknownChannel);
        }
        if !channel.register(client) {
            map.remove(id);
            tracing::info!(channel = %id, "third client id on a channel; channel deleted");
            return Err(ChannelError::ThirdClient);
        }
        Ok(f(channel))
    }

    /// The map, even if a panic poisoned the lock: every update leaves each channel
    /// consistent, so the data is still sound.
    fn lock(&self) -> MutexGuard<'_, HashMap<ChannelId, Channel>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(byte: u8) -> ClientId {
        ClientId::parse(hex::encode([byte; 128]).as_bytes()).unwrap()
    }

    fn channels(settings: ChannelSettings) -> Channels {
        Channels::new(&settings)
    }

    fn put(channels: &Channels, id: &ChannelId, who: &ClientId, body: &str, now: Instant) -> ETag {
        let body = Bytes::copy_from_slice(body.as_bytes());
        let etag = ETag::of(&body);
        channels
            .write(id, who, PutCondition::None, body, etag, now)
            .unwrap()
    }

    #[test]
    fn channels_expire_a_ttl_after_creation_however_busy() {
        let store = channels(ChannelSettings::default());
        let t0 = Instant::now();
        let id = store.create(client(1), t0).unwrap();
        put(&store, &id, &client(1), "{}", t0 + Duration::from_secs(299));
        assert!(matches!(
            store.read(&id, &client(1), None, t0 + Duration::from_secs(300)),
            Err(ChannelError::UnknownChannel)
        ));
        assert_eq!(store.len(), 0, "removed lazily on access");
    }

    #[test]
    fn creation_sweeps_expired_channels() {
        let store = channels(ChannelSettings {
            max_channels: 3,
            ..ChannelSettings::default()
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            store.create(client(1), t0).unwrap();
        }
        assert!(matches!(
            store.create(client(1), t0),
            Err(ChannelError::Full)
        ));
        store
            .create(client(1), t0 + Duration::from_secs(300))
            .unwrap();
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn creation_gives_up_when_the_id_space_is_exhausted() {
        let store = channels(ChannelSettings {
            channel_id_length: 1,
            ..ChannelSettings::default()
        });
        let now = Instant::now();
        // An attempt may fail by bad luck before the space is full; only the end matters.
        while store.len() < 32 {
            let _ = store.create(client(1), now);
        }
        assert!(matches!(
            store.create(client(1), now),
            Err(ChannelError::NoFreeId)
        ));
    }

    #[test]
    fn only_registered_clients_may_delete_by_report() {
        let store = channels(ChannelSettings::default());
        let now = Instant::now();
        let id = store.create(client(1), now).unwrap();
        assert_eq!(
            store.delete_reported(&id, &client(2), now),
            ReportDeletion::NotRegistered
        );
        assert_eq!(
            store.delete_reported(&id, &client(1), now),
            ReportDeletion::Deleted
        );
        assert_eq!(
            store.delete_reported(&id, &client(1), now),
            ReportDeletion::Unknown
        );
    }

    #[test]
    fn if_none_match_on_put_compares_tags() {
        let store = channels(ChannelSettings::default());
        let now = Instant::now();
        let id = store.create(client(1), now).unwrap();
        let first = put(&store, &id, &client(1), r#"{"a":1}"#, now);
        let body = Bytes::from_static(br#"{"a":2}"#);
        let header = first.header_value().to_str().unwrap().to_owned();
        let refused = store.write(
            &id,
            &client(1),
            PutCondition::IfNoneMatch(&header),
            body.clone(),
            ETag::of(&body),
            now,
        );
        assert!(matches!(
            refused,
            Err(ChannelError::PreconditionFailed { .. })
        ));
        store
            .write(
                &id,
                &client(1),
                PutCondition::IfNoneMatch("\"something-else\""),
                body.clone(),
                ETag::of(&body),
                now,
            )
            .unwrap();
    }
}
