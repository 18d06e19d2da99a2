//! Scopes of a credential: the [`Action`]s it grants and the
//! [`ChannelPattern`]s it covers — what publishable keys, secret keys and JWT
//! claims (`channels`, `permissions`) carry. Pure data and matching.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::validate::has_control_chars;

/// An action a credential may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Publish to channels.
    Publish,
    /// Subscribe to channels.
    Subscribe,
    /// Receive presence frames.
    Presence,
    /// Send direct messages.
    Send,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 4] = [Action::Publish, Action::Subscribe, Action::Presence, Action::Send];

    const fn bit(self) -> u8 {
        match self {
            Action::Publish => 1,
            Action::Subscribe => 2,
            Action::Presence => 4,
            Action::Send => 8,
        }
    }
}

/// A set of actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions(u8);

impl Actions {
    /// Whether the set grants `a`.
    pub fn allows(self, a: Action) -> bool {
        self.0 & a.bit() != 0
    }
    /// The actions in both sets.
    pub fn intersection(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    /// Whether every action of `self` is also in `other`.
    pub fn is_subset_of(self, other: Actions) -> bool {
        self.0 & !other.0 == 0
    }
}

impl FromIterator<Action> for Actions {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        Actions(iter.into_iter().fold(0, |acc, a| acc | a.bit()))
    }
}

/// A channel pattern: a literal channel name, or one ending in `*` that matches
/// every channel with that prefix (`room-*`, `app_xyz/*`). `*` and `**` alone
/// match every channel.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelPattern(Arc<str>);

impl ChannelPattern {
    /// The pattern matching every channel.
    pub fn everything() -> Self {
        ChannelPattern(Arc::from("**"))
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn prefix(&self) -> Option<&str> {
        self.0.strip_suffix("**").or_else(|| self.0.strip_suffix('*'))
    }

    /// Whether the pattern matches a channel name.
    pub fn matches(&self, channel: &str) -> bool {
        match self.prefix() {
            Some(prefix) => channel.starts_with(prefix),
            None => &*self.0 == channel,
        }
    }

    /// Whether every channel `other` matches is also matched by `self`.
    pub fn covers(&self, other: &ChannelPattern) -> bool {
        match (self.prefix(), other.prefix()) {
            (Some(p), Some(q)) => q.starts_with(p),
            (Some(p), None) => other.0.starts_with(p),
            (None, Some(_)) => false,
            (None, None) => self.0 == other.0,
        }
    }
}

impl TryFrom<String> for ChannelPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.len() > 256 {
            return Err(format!("channel pattern {s:?} must be 1..=256 bytes"));
        }
        if has_control_chars(&s) {
            return Err(format!("channel pattern {s:?} contains control characters"));
        }
        let body = s.strip_suffix("**").or_else(|| s.strip_suffix('*')).unwrap_or(&s);
        if body.contains('*') {
            return Err(format!("channel pattern {s:?}: `*` is only allowed at the end"));
        }
        Ok(ChannelPattern(Arc::from(s)))
    }
}

impl From<ChannelPattern> for String {
    fn from(p: ChannelPattern) -> String {
        p.0.to_string()
    }
}

impl fmt::Debug for ChannelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> ChannelPattern {
        ChannelPattern::try_from(s.to_owned()).unwrap()
    }

    #[test]
    fn patterns() {
        assert!(pat("room-*").matches("room-42"));
        assert!(pat("room-*").matches("room-"));
        assert!(!pat("room-*").matches("roo"));
        assert!(pat("app_xyz/*").matches("app_xyz/a/b"));
        assert!(pat("**").matches("anything/at/all"));
        assert!(pat("*").matches("x"));
        assert!(pat("exact").matches("exact"));
        assert!(!pat("exact").matches("exact2"));
        assert!(ChannelPattern::try_from("a*b".to_owned()).is_err());
        assert!(ChannelPattern::try_from(String::new()).is_err());
        assert!(pat("**").covers(&pat("room-*")));
        assert!(pat("room-*").covers(&pat("room-1*")));
        assert!(pat("room-*").covers(&pat("room-1")));
        assert!(!pat("room-1").covers(&pat("room-*")));
        assert!(!pat("room-*").covers(&pat("roo*")));
    }
}
