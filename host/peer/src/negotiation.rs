//! Perfect negotiation as a pure state machine (sans-IO): time is an input,
//! decisions are outputs. The connection driver performs the WebRTC calls.
//!
//! It follows the official SDKs' behaviour:
//!
//! - **politeness**: the peer whose id sorts lower is polite
//!   ([`metered_protocol::is_polite`]);
//! - **polite defers**: before its first negotiation the polite side waits up to
//!   [`POLITE_DEFER`] for the impolite side's offer and answers it with its own
//!   media piggybacked, so it rarely holds an offer of its own;
//! - **collisions**: the impolite side ignores a colliding offer; the polite side
//!   answers it from a fresh connection (rebuild), as does anyone whose remote
//!   rebuilt (a changed `a=ice-ufrag`) — both rate-limited by
//!   [`INBOUND_REBUILD_COOLDOWN`] against a hostile peer oscillating its ufrag;
//! - **recovery**: after ICE failure, rebuilds on the ladder immediate, 1, 2, 4, 8,
//!   16, 30, 30, 30 s, then one terminal error;
//! - **hygiene**: at most [`MAX_CANDIDATES_PER_GENERATION`] inbound candidates per
//!   negotiation generation, each at most [`MAX_CANDIDATE_LEN`] bytes.

use std::time::{Duration, Instant};

use metered_protocol::ice_ufrag;

/// How long the polite side waits for the impolite side's first offer.
pub const POLITE_DEFER: Duration = Duration::from_secs(2);
/// Minimum spacing between rebuilds triggered by inbound offers.
pub const INBOUND_REBUILD_COOLDOWN: Duration = Duration::from_secs(2);
/// Inbound candidates accepted per negotiation generation.
pub const MAX_CANDIDATES_PER_GENERATION: u32 = 200;
/// Longest inbound `candidate` string accepted.
pub const MAX_CANDIDATE_LEN: usize = 1000;
/// How long a local offer waits for its answer before it is sent again. The
/// Python SDK (impolite) ignores an offer that arrives while its own offer's
/// send is still being acknowledged, even once it is stable again: without a
/// resend both sides would wait for each other forever.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// Resends of one unanswered offer before the connection is rebuilt.
pub const MAX_OFFER_RESENDS: u32 = 3;
/// Rebuild attempts after ICE failure before giving up.
pub const MAX_REBUILD_ATTEMPTS: u32 = 9;
const REBUILD_BASE_DELAY: Duration = Duration::from_secs(1);
const REBUILD_MAX_DELAY: Duration = Duration::from_secs(30);

/// What the driver should do about a local offer still waiting for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Keep waiting; look again at this instant.
    WaitUntil(Instant),
    /// Send the same offer again.
    Resend,
    /// Resends did not help: rebuild the connection.
    Rebuild,
}

/// What the driver should do about a local offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferAction {
    /// Nothing to negotiate.
    Idle,
    /// Create and send an offer now.
    Offer,
    /// Ask again at this instant (the polite side is deferring).
    WaitUntil(Instant),
}

/// What to do with an inbound offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteOffer {
    /// Apply it and answer.
    Apply,
    /// Impolite side in a collision: drop it (the remote will answer ours).
    Ignore,
    /// Rebuild the connection, then apply and answer (polite collision, or the
    /// remote rebuilt).
    RebuildThenApply,
    /// A rebuild would be needed but one happened too recently: drop it.
    DropCooldown,
}

/// What to do with an inbound candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    /// Hand it to the connection.
    Add,
    /// End of candidates.
    End,
    /// Drop it silently (the reason is for logs).
    Drop(&'static str),
}

/// What the recovery ladder says after ICE failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Rebuild at this instant.
    RebuildAt(Instant),
    /// Out of attempts: surface one terminal error (latched until reconnected).
    GiveUp,
    /// Already gave up; nothing more.
    Done,
}

/// Negotiation state of one remote peer's connection.
#[derive(Debug)]
pub struct Negotiator {
    polite: bool,
    dirty: bool,
    ever_negotiated: bool,
    defer_until: Option<Instant>,
    remote_ufrag: Option<String>,
    candidates: u32,
    last_inbound_rebuild: Option<Instant>,
    follow_up_attempted: bool,
    ignore_offer: bool,
    rebuild_attempt: u32,
    gave_up: bool,
    /// When the local offer now waiting for its answer was (last) sent.
    offer_sent_at: Option<Instant>,
    offer_resends: u32,
}

impl Negotiator {
    /// A fresh negotiator; `polite` from the politeness rule.
    pub fn new(polite: bool) -> Self {
        Self {
            polite,
            dirty: false,
            ever_negotiated: false,
            defer_until: None,
            remote_ufrag: None,
            candidates: 0,
            last_inbound_rebuild: None,
            follow_up_attempted: false,
            ignore_offer: false,
            rebuild_attempt: 0,
            gave_up: false,
            offer_sent_at: None,
            offer_resends: 0,
        }
    }

    /// Whether this side is polite.
    pub fn polite(&self) -> bool {
        self.polite
    }

    /// Whether a negotiation has completed (or an offer was sent) on this generation.
    pub fn ever_negotiated(&self) -> bool {
        self.ever_negotiated
    }

    /// Local media changed: an offer is due (deferred on the polite side until the
    /// first negotiation, so it can ride the impolite side's offer).
    pub fn mark_dirty(&mut self, now: Instant) {
        self.dirty = true;
        if self.polite && !self.ever_negotiated && self.defer_until.is_none() {
            self.defer_until = Some(now + POLITE_DEFER);
        }
    }

    /// Whether local changes await negotiation.
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Polls for a local offer. Returning [`OfferAction::Offer`] clears the dirty flag.
    pub fn poll_offer(&mut self, now: Instant) -> OfferAction {
        if !self.dirty {
            return OfferAction::Idle;
        }
        if self.polite
            && !self.ever_negotiated
            && let Some(until) = self.defer_until
            && now < until
        {
            return OfferAction::WaitUntil(until);
        }
        self.dirty = false;
        OfferAction::Offer
    }

    /// Our offer went out: the remote has a description to answer.
    pub fn offer_sent(&mut self, now: Instant) {
        self.ever_negotiated = true;
        self.offer_sent_at = Some(now);
        self.offer_resends = 0;
    }

    /// Our offer is still unanswered at `now` (the signaling state is
    /// `have-local-offer`): wait, send it again, or give up on the connection.
    pub fn unanswered(&mut self, now: Instant) -> Unanswered {
        let sent = *self.offer_sent_at.get_or_insert(now);
        let due = sent + ANSWER_TIMEOUT;
        if now < due {
            return Unanswered::WaitUntil(due);
        }
        if self.offer_resends < MAX_OFFER_RESENDS {
            self.offer_resends += 1;
            self.offer_sent_at = Some(now);
            return Unanswered::Resend;
        }
        self.offer_sent_at = None;
        self.offer_resends = 0;
        Unanswered::Rebuild
    }

    /// Creating or sending the offer failed: allow one more try later.
    pub fn offer_failed(&mut self) {
        self.dirty = true;
    }

    /// Decides about an inbound offer. `stable` is the signaling state;
    /// `has_remote` whether a remote description was ever applied on this generation.
    pub fn remote_offer(&mut self, sdp: &str, stable: bool, has_remote: bool, now: Instant) -> RemoteOffer {
        let collision = !stable;
        let restarted = has_remote
            && match (ice_ufrag(sdp), self.remote_ufrag.as_deref()) {
                (Some(new), Some(old)) => new != old,
                _ => false,
            };
        self.ignore_offer = !self.polite && collision;
        if self.ignore_offer {
            return RemoteOffer::Ignore;
        }
        if collision || restarted {
            if self.last_inbound_rebuild.is_some_and(|t| now.saturating_duration_since(t) < INBOUND_REBUILD_COOLDOWN) {
                return RemoteOffer::DropCooldown;
            }
            self.last_inbound_rebuild = Some(now);
            return RemoteOffer::RebuildThenApply;
        }
        RemoteOffer::Apply
    }

    /// A remote description (offer or answer) was applied.
    pub fn remote_applied(&mut self, sdp: &str) {
        self.remote_ufrag = ice_ufrag(sdp).map(str::to_owned);
        self.candidates = 0;
        self.ever_negotiated = true;
        self.ignore_offer = false;
    }

    /// A negotiation round finished (we answered, or our offer was answered).
    /// `unsatisfied`: some local media did not make it into the session — offer
    /// once more (bounded to one follow-up).
    pub fn round_complete(&mut self, unsatisfied: bool, now: Instant) {
        if unsatisfied {
            if !self.follow_up_attempted {
                self.follow_up_attempted = true;
                self.mark_dirty(now);
            }
        } else {
            self.dirty = false;
            self.follow_up_attempted = false;
        }
    }

    /// Whether an inbound answer applies (`have_local_offer`); a stale one is dropped.
    pub fn remote_answer(&mut self, have_local_offer: bool) -> bool {
        if have_local_offer {
            self.offer_sent_at = None;
            self.offer_resends = 0;
        }
        have_local_offer
    }

    /// Decides about an inbound candidate (`None` = end of candidates).
    pub fn remote_candidate(&mut self, candidate: Option<&str>, has_remote: bool) -> Candidate {
        let Some(c) = candidate else { return Candidate::End };
        if c.is_empty() {
            return Candidate::End;
        }
        if c.len() > MAX_CANDIDATE_LEN {
            return Candidate::Drop("oversized candidate");
        }
        if self.candidates >= MAX_CANDIDATES_PER_GENERATION {
            return Candidate::Drop("candidate cap reached");
        }
        if !has_remote {
            return Candidate::Drop("candidate before remote description");
        }
        self.candidates += 1;
        Candidate::Add
    }

    /// Whether candidate errors are suppressed (inside a collision-ignore window).
    pub fn ignoring_offer(&self) -> bool {
        self.ignore_offer
    }

    /// The connection was rebuilt: a fresh generation negotiates from scratch
    /// (an offer is due when there is local media to send).
    pub fn rebuilt(&mut self, now: Instant, has_media: bool) {
        self.ever_negotiated = false;
        self.offer_sent_at = None;
        self.offer_resends = 0;
        self.defer_until = None;
        self.remote_ufrag = None;
        self.candidates = 0;
        self.follow_up_attempted = false;
        self.ignore_offer = false;
        self.dirty = false;
        if has_media {
            self.mark_dirty(now);
        }
    }

    /// ICE connected: a fresh recovery budget.
    pub fn connected(&mut self) {
        self.rebuild_attempt = 0;
        self.gave_up = false;
    }

    /// ICE failed: when to rebuild next, or give up.
    pub fn failed(&mut self, now: Instant) -> Recovery {
        if self.gave_up {
            return Recovery::Done;
        }
        if self.rebuild_attempt >= MAX_REBUILD_ATTEMPTS {
            self.gave_up = true;
            return Recovery::GiveUp;
        }
        let attempt = self.rebuild_attempt;
        self.rebuild_attempt += 1;
        let delay = if attempt == 0 {
            Duration::ZERO
        } else {
            REBUILD_BASE_DELAY.saturating_mul(1 << (attempt - 1).min(16)).min(REBUILD_MAX_DELAY)
        };
        Recovery::RebuildAt(now + delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(ufrag: &str) -> String {
        format!("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:{ufrag}\r\na=mid:0\r\n")
    }

    #[test]
    fn an_unanswered_offer_is_sent_again_then_the_connection_rebuilt() {
        let t0 = Instant::now();
        let mut n = Negotiator::new(true);
        n.offer_sent(t0);
        assert_eq!(n.unanswered(t0 + Duration::from_millis(500)), Unanswered::WaitUntil(t0 + ANSWER_TIMEOUT));
        let mut t = t0 + ANSWER_TIMEOUT;
        for _ in 0..MAX_OFFER_RESENDS {
            assert_eq!(n.unanswered(t), Unanswered::Resend);
            assert_eq!(n.unanswered(t), Unanswered::WaitUntil(t + ANSWER_TIMEOUT), "each resend restarts the wait");
            t += ANSWER_TIMEOUT;
        }
        assert_eq!(n.unanswered(t), Unanswered::Rebuild);
        // An answer clears it all: the next offer starts a fresh count.
        n.offer_sent(t);
        assert!(n.remote_answer(true));
        n.offer_sent(t);
        assert_eq!(n.unanswered(t + ANSWER_TIMEOUT), Unanswered::Resend);
        assert!(!n.remote_answer(false), "a stale answer does not apply");
    }

    #[test]
    fn impolite_offers_at_once_polite_defers_then_offers() {
        let t0 = Instant::now();
        let mut imp = Negotiator::new(false);
        assert_eq!(imp.poll_offer(t0), OfferAction::Idle);
        imp.mark_dirty(t0);
        assert_eq!(imp.poll_offer(t0), OfferAction::Offer);
        assert_eq!(imp.poll_offer(t0), OfferAction::Idle, "offer clears dirty");

        let mut pol = Negotiator::new(true);
        pol.mark_dirty(t0);
        assert_eq!(pol.poll_offer(t0), OfferAction::WaitUntil(t0 + POLITE_DEFER));
        pol.mark_dirty(t0 + Duration::from_secs(1));
        assert_eq!(pol.poll_offer(t0 + Duration::from_secs(1)), OfferAction::WaitUntil(t0 + POLITE_DEFER));
        assert_eq!(pol.poll_offer(t0 + POLITE_DEFER), OfferAction::Offer, "fallback offer after the defer");
    }

    #[test]
    fn polite_answer_with_piggybacked_media_cancels_its_offer() {
        let t0 = Instant::now();
        let mut pol = Negotiator::new(true);
        pol.mark_dirty(t0);
        assert_eq!(pol.remote_offer(&sdp("a"), true, false, t0), RemoteOffer::Apply);
        pol.remote_applied(&sdp("a"));
        pol.round_complete(false, t0);
        assert_eq!(pol.poll_offer(t0), OfferAction::Idle);
        // Later changes are offered at once (no defer after the first negotiation).
        pol.mark_dirty(t0);
        assert_eq!(pol.poll_offer(t0), OfferAction::Offer);
    }

    #[test]
    fn unsatisfied_media_gets_one_follow_up_offer() {
        let t0 = Instant::now();
        let mut n = Negotiator::new(false);
        n.remote_applied(&sdp("a"));
        n.round_complete(true, t0);
        assert_eq!(n.poll_offer(t0), OfferAction::Offer);
        n.round_complete(true, t0);
        assert_eq!(n.poll_offer(t0), OfferAction::Idle, "bounded to one follow-up");
        n.round_complete(false, t0);
        n.round_complete(true, t0);
        assert_eq!(n.poll_offer(t0), OfferAction::Offer, "budget resets after success");
    }

    #[test]
    fn collisions_impolite_ignores_polite_rebuilds_with_cooldown() {
        let t0 = Instant::now();
        let mut imp = Negotiator::new(false);
        assert_eq!(imp.remote_offer(&sdp("a"), false, false, t0), RemoteOffer::Ignore);
        assert!(imp.ignoring_offer());
        let mut pol = Negotiator::new(true);
        assert_eq!(pol.remote_offer(&sdp("a"), false, false, t0), RemoteOffer::RebuildThenApply);
        assert_eq!(pol.remote_offer(&sdp("a"), false, false, t0 + Duration::from_secs(1)), RemoteOffer::DropCooldown);
        assert_eq!(
            pol.remote_offer(&sdp("a"), false, false, t0 + Duration::from_secs(3)),
            RemoteOffer::RebuildThenApply
        );
    }

    #[test]
    fn changed_remote_ufrag_means_the_remote_rebuilt() {
        let t0 = Instant::now();
        let mut n = Negotiator::new(false);
        assert_eq!(n.remote_offer(&sdp("a"), true, false, t0), RemoteOffer::Apply);
        n.remote_applied(&sdp("a"));
        assert_eq!(n.remote_offer(&sdp("a"), true, true, t0), RemoteOffer::Apply, "same ufrag: renegotiation");
        assert_eq!(n.remote_offer(&sdp("b"), true, true, t0), RemoteOffer::RebuildThenApply);
        // A hostile peer oscillating its ufrag is rate-limited.
        assert_eq!(n.remote_offer(&sdp("c"), true, true, t0), RemoteOffer::DropCooldown);
    }

    #[test]
    fn candidate_hygiene() {
        let mut n = Negotiator::new(true);
        assert_eq!(n.remote_candidate(None, false), Candidate::End);
        assert_eq!(n.remote_candidate(Some(""), true), Candidate::End);
        assert!(matches!(n.remote_candidate(Some("c"), false), Candidate::Drop(_)));
        assert!(matches!(n.remote_candidate(Some(&"x".repeat(1001)), true), Candidate::Drop(_)));
        for _ in 0..MAX_CANDIDATES_PER_GENERATION {
            assert_eq!(n.remote_candidate(Some("c"), true), Candidate::Add);
        }
        assert!(matches!(n.remote_candidate(Some("c"), true), Candidate::Drop(_)));
        n.remote_applied(&sdp("z"));
        assert_eq!(n.remote_candidate(Some("c"), true), Candidate::Add, "budget is per generation");
    }

    #[test]
    fn recovery_ladder_then_one_terminal_signal() {
        let t0 = Instant::now();
        let mut n = Negotiator::new(false);
        let delays: Vec<u64> = (0..MAX_REBUILD_ATTEMPTS)
            .map(|_| match n.failed(t0) {
                Recovery::RebuildAt(at) => at.duration_since(t0).as_secs(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(n.failed(t0), Recovery::GiveUp);
        assert_eq!(n.failed(t0), Recovery::Done, "latched");
        n.connected();
        assert_eq!(n.failed(t0), Recovery::RebuildAt(t0));
    }

    #[test]
    fn rebuild_restarts_negotiation() {
        let t0 = Instant::now();
        let mut n = Negotiator::new(true);
        n.remote_applied(&sdp("a"));
        n.rebuilt(t0, true);
        assert!(!n.ever_negotiated());
        assert_eq!(n.poll_offer(t0), OfferAction::WaitUntil(t0 + POLITE_DEFER), "polite defers again");
        n.rebuilt(t0, false);
        assert_eq!(n.poll_offer(t0), OfferAction::Idle, "nothing to send, nothing to offer");
    }
}
