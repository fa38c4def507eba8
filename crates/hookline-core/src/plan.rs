//! What an attempt's verdict means for the record and for the next attempt: a pure function,
//! so every rule is tested without a network.

use std::time::Duration;

use time::OffsetDateTime;

use crate::model::{DestinationStatus, MessageStatus, TriggerType};
use crate::outcome::Verdict;

/// The consequences of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptPlan {
    /// Status of the attempt itself.
    pub attempt_status: MessageStatus,
    /// New delivery state of the (message, endpoint) pair.
    pub destination_status: MessageStatus,
    /// When the pair's next attempt is due, as the destination record shows it.
    pub next_attempt: Option<OffsetDateTime>,
    /// Schedule a new attempt at this time.
    pub schedule_at: Option<OffsetDateTime>,
    /// The receiver asked never to be called again (410 Gone).
    pub disable_endpoint: bool,
}

/// Plans what follows an attempt.
///
/// `retry_delay` is the schedule's wait after this attempt (`None` when it was the last);
/// `previous` is the pair's state before it. A manual attempt (resend, recover) never
/// changes the retry plan when it fails: the pair keeps its previous state.
pub fn plan_after_attempt(
    verdict: Verdict,
    trigger: TriggerType,
    retry_delay: Option<Duration>,
    previous: Option<&DestinationStatus>,
    now: OffsetDateTime,
) -> AttemptPlan {
    let failed = |destination_status, next_attempt| AttemptPlan {
        attempt_status: MessageStatus::Fail,
        destination_status,
        next_attempt,
        schedule_at: next_attempt,
        disable_endpoint: false,
    };
    match (verdict, trigger) {
        (Verdict::Delivered, _) => AttemptPlan {
            attempt_status: MessageStatus::Success,
            destination_status: MessageStatus::Success,
            next_attempt: None,
            schedule_at: None,
            disable_endpoint: false,
        },
        (Verdict::Gone, _) => AttemptPlan {
            disable_endpoint: true,
            ..failed(MessageStatus::Fail, None)
        },
        (Verdict::Retry, TriggerType::Manual) => match previous {
            // The pending retry stays in the schedule; nothing new is scheduled here.
            Some(p) => AttemptPlan {
                schedule_at: None,
                ..failed(p.status, p.next_attempt)
            },
            None => failed(MessageStatus::Fail, None),
        },
        (Verdict::Retry, TriggerType::Scheduled) => match retry_delay {
            Some(delay) => failed(MessageStatus::Pending, Some(now + delay)),
            None => failed(MessageStatus::Fail, None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn previous(status: MessageStatus) -> DestinationStatus {
        DestinationStatus {
            endpoint_id: "ep_1".into(),
            status,
            attempts: 3,
            next_attempt: None,
        }
    }

    #[test]
    fn plans_for_every_verdict_and_trigger() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let second = Some(Duration::from_secs(1));
        let scheduled = TriggerType::Scheduled;
        let manual = TriggerType::Manual;

        let ok = plan_after_attempt(Verdict::Delivered, manual, None, None, now);
        assert_eq!(ok.destination_status, MessageStatus::Success);

        let retry = plan_after_attempt(Verdict::Retry, scheduled, second, None, now);
        assert_eq!(retry.destination_status, MessageStatus::Pending);
        assert_eq!(retry.next_attempt, Some(now + Duration::from_secs(1)));
        assert_eq!(retry.schedule_at, retry.next_attempt);

        let last = plan_after_attempt(Verdict::Retry, scheduled, None, None, now);
        assert_eq!(
            (last.destination_status, last.next_attempt),
            (MessageStatus::Fail, None)
        );

        let gone = plan_after_attempt(Verdict::Gone, scheduled, second, None, now);
        assert!(gone.disable_endpoint);
        assert_eq!(gone.next_attempt, None);

        // A failed resend neither schedules anything nor changes the pair's state.
        let mut pending = previous(MessageStatus::Pending);
        pending.next_attempt = Some(now + Duration::from_secs(60));
        let resend = plan_after_attempt(Verdict::Retry, manual, second, Some(&pending), now);
        assert_eq!(resend.attempt_status, MessageStatus::Fail);
        assert_eq!(resend.destination_status, MessageStatus::Pending);
        assert_eq!(resend.next_attempt, pending.next_attempt);
        assert_eq!(resend.schedule_at, None);
        let failed = previous(MessageStatus::Fail);
        let resend = plan_after_attempt(Verdict::Retry, manual, second, Some(&failed), now);
        assert_eq!(resend.destination_status, MessageStatus::Fail);
    }
}
