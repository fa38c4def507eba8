//! What an app portal token may do inside its own app: Svix's capabilities and read-only
//! flag, decided without knowing HTTP.
//!
//! Which app a token reaches is tenancy (the ingest crate's `auth`); this module answers
//! the next question, whether the token may do *this* there. The API names each request's
//! [`Action`] and asks [`TokenScope::allows`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// One right an app portal token can carry (Svix's `AppPortalCapability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Capability {
    /// Read the app's endpoints, messages and attempts, but no endpoint secret. Every
    /// scoped token has it.
    ViewBase,
    /// Read endpoint secrets.
    ViewEndpointSecret,
    /// Read and rotate endpoint secrets.
    ManageEndpointSecret,
    /// Change endpoint transformations. Hookline has none (their routes answer
    /// `not_supported`), so this grants nothing more; it is accepted so tokens minted for
    /// Svix work unchanged.
    ManageTransformations,
    /// Resend messages, send example messages, recover and replay failed ones.
    CreateAttempts,
    /// Create, change and delete endpoints, their headers and secrets.
    ManageEndpoint,
}

impl Capability {
    /// Every capability: what a token gets when none are named.
    pub const ALL: [Capability; 6] = [
        Capability::ViewBase,
        Capability::ViewEndpointSecret,
        Capability::ManageEndpointSecret,
        Capability::ManageTransformations,
        Capability::CreateAttempts,
        Capability::ManageEndpoint,
    ];
}

/// What a request does inside an app, as far as a token's scope is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Any read but an endpoint's secret.
    Read,
    /// Read an endpoint's signing secret.
    ReadSecret,
    /// Replace an endpoint's signing secret.
    RotateSecret,
    /// Create, change or delete an endpoint or its headers.
    ManageEndpoint,
    /// Make delivery attempts happen: resend, send an example, recover, replay.
    CreateAttempts,
    /// Any other change (send a message, expunge content): no capability names these, so
    /// only a token with every capability may.
    OtherWrite,
}

impl Action {
    /// Whether the action changes nothing.
    pub fn is_read(self) -> bool {
        matches!(self, Action::Read | Action::ReadSecret)
    }

    /// The capabilities that allow it, for the refusal's message.
    pub fn allowed_by(self) -> &'static str {
        match self {
            Action::Read => "ViewBase",
            Action::ReadSecret => "ViewEndpointSecret, ManageEndpointSecret or ManageEndpoint",
            Action::RotateSecret => "ManageEndpointSecret or ManageEndpoint",
            Action::ManageEndpoint => "ManageEndpoint",
            Action::CreateAttempts => "CreateAttempts",
            Action::OtherWrite => "every capability",
        }
    }
}

/// Why a requested scope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Svix requires `ViewBase` in every capability list.
    #[error("must include ViewBase (every token may read its app)")]
    MissingViewBase,
}

/// A token's capabilities and read-only flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScope {
    capabilities: BTreeSet<Capability>,
    read_only: bool,
}

impl TokenScope {
    /// Every capability, writes allowed: a token minted without options.
    pub fn full() -> Self {
        Self {
            capabilities: Capability::ALL.into_iter().collect(),
            read_only: false,
        }
    }

    /// The scope asked for: `None` means every capability (Svix's default); a list must
    /// include [`Capability::ViewBase`].
    pub fn new(
        capabilities: Option<BTreeSet<Capability>>,
        read_only: bool,
    ) -> Result<Self, ScopeError> {
        let capabilities = match capabilities {
            None => Capability::ALL.into_iter().collect(),
            Some(given) if !given.contains(&Capability::ViewBase) => {
                return Err(ScopeError::MissingViewBase)
            }
            Some(given) => given,
        };
        Ok(Self {
            capabilities,
            read_only,
        })
    }

    /// A scope as stored with a token. A stored list without `ViewBase` (never written by
    /// [`TokenScope::new`]) grants only what it names.
    pub fn stored(capabilities: Option<BTreeSet<Capability>>, read_only: bool) -> Self {
        Self {
            capabilities: capabilities.unwrap_or_else(|| Capability::ALL.into_iter().collect()),
            read_only,
        }
    }

    /// The capabilities, for storing with the token.
    pub fn capabilities(&self) -> &BTreeSet<Capability> {
        &self.capabilities
    }

    /// Whether only reads are allowed.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Whether a token with this scope may do `action` in its app.
    pub fn allows(&self, action: Action) -> bool {
        use Capability::*;
        if self.read_only && !action.is_read() {
            return false;
        }
        let has = |capability| self.capabilities.contains(&capability);
        match action {
            Action::Read => has(ViewBase),
            Action::ReadSecret => {
                has(ViewEndpointSecret) || has(ManageEndpointSecret) || has(ManageEndpoint)
            }
            Action::RotateSecret => has(ManageEndpointSecret) || has(ManageEndpoint),
            Action::ManageEndpoint => has(ManageEndpoint),
            Action::CreateAttempts => has(CreateAttempts),
            Action::OtherWrite => Capability::ALL.into_iter().all(has),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::*;

    fn scope(capabilities: &[Capability], read_only: bool) -> TokenScope {
        TokenScope::new(Some(capabilities.iter().copied().collect()), read_only).expect("valid")
    }

    const ACTIONS: [Action; 6] = [
        Action::Read,
        Action::ReadSecret,
        Action::RotateSecret,
        Action::ManageEndpoint,
        Action::CreateAttempts,
        Action::OtherWrite,
    ];

    fn allowed(scope: &TokenScope) -> Vec<Action> {
        ACTIONS.into_iter().filter(|a| scope.allows(*a)).collect()
    }

    #[test]
    fn each_capability_adds_exactly_its_actions() {
        use Action as A;
        let table: [(&[Capability], &[Action]); 7] = [
            (&[ViewBase], &[A::Read]),
            (&[ViewBase, ViewEndpointSecret], &[A::Read, A::ReadSecret]),
            (
                &[ViewBase, ManageEndpointSecret],
                &[A::Read, A::ReadSecret, A::RotateSecret],
            ),
            (&[ViewBase, ManageTransformations], &[A::Read]),
            (&[ViewBase, CreateAttempts], &[A::Read, A::CreateAttempts]),
            (
                &[ViewBase, ManageEndpoint],
                &[A::Read, A::ReadSecret, A::RotateSecret, A::ManageEndpoint],
            ),
            (&Capability::ALL, &ACTIONS),
        ];
        for (capabilities, actions) in table {
            assert_eq!(
                allowed(&scope(capabilities, false)),
                actions,
                "{capabilities:?}"
            );
        }
    }

    #[test]
    fn no_list_means_every_capability() {
        let default = TokenScope::new(None, false).expect("valid");
        assert_eq!(default, TokenScope::full());
        assert_eq!(allowed(&default), ACTIONS);
    }

    #[test]
    fn read_only_allows_reads_whatever_the_capabilities() {
        assert_eq!(
            allowed(&scope(&Capability::ALL, true)),
            [Action::Read, Action::ReadSecret]
        );
        assert_eq!(allowed(&scope(&[ViewBase], true)), [Action::Read]);
    }

    #[test]
    fn a_list_without_view_base_is_refused() {
        assert_eq!(
            TokenScope::new(Some([ManageEndpoint].into_iter().collect()), false),
            Err(ScopeError::MissingViewBase)
        );
        assert_eq!(
            TokenScope::new(Some(BTreeSet::new()), false),
            Err(ScopeError::MissingViewBase)
        );
    }
}
