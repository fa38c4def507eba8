//! Turning a batch's publisher confirms into one answer per `publish` call.
//!
//! Never `Ok` unless the call's every message was plainly acked and nothing in its batch
//! came back unroutable: lapin attaches a returned message to whichever confirm resolves
//! next, not necessarily its own, so a return taints the whole batch.

use hookline_core::ports::QueueError;
use lapin::publisher_confirm::Confirmation;

/// One publish's confirmation, reduced to what decides the caller's answer.
#[derive(Debug)]
pub(crate) enum Confirmed {
    Ack,
    Nack,
    /// Came back unroutable (`mandatory`), with the broker's reply code and text.
    Returned(String),
    /// The channel was not in confirm mode: there is no proof of durability.
    Unconfirmed,
    /// The channel or connection died while waiting.
    Failed(String),
}

impl From<lapin::Result<Confirmation>> for Confirmed {
    fn from(confirmation: lapin::Result<Confirmation>) -> Self {
        match confirmation {
            Ok(Confirmation::Ack(Some(message)) | Confirmation::Nack(Some(message))) => {
                Self::Returned(format!(
                    "unroutable: {} {}",
                    message.reply_code,
                    message.reply_text.as_str()
                ))
            }
            Ok(Confirmation::Ack(None)) => Self::Ack,
            Ok(Confirmation::Nack(None)) => Self::Nack,
            Ok(Confirmation::NotRequested) => Self::Unconfirmed,
            Err(error) => Self::Failed(error.to_string()),
        }
    }
}

/// What a batch's confirmations say, before splitting them per call.
pub(crate) struct BatchVerdict {
    /// Some message came back unroutable: see the module docs for why it taints the batch.
    returned: Option<String>,
    /// Some confirm failed (channel or connection died while waiting).
    pub(crate) errored: bool,
}

impl BatchVerdict {
    pub(crate) fn of(confirmations: &[Confirmed]) -> Self {
        let mut returned = None;
        let mut errored = false;
        for confirmation in confirmations {
            match confirmation {
                Confirmed::Returned(why) => {
                    returned.get_or_insert_with(|| why.clone());
                }
                Confirmed::Failed(_) => errored = true,
                Confirmed::Ack | Confirmed::Nack | Confirmed::Unconfirmed => {}
            }
        }
        Self { returned, errored }
    }

    /// The answer for one call, given its own confirmations. Never `Ok` unless every one
    /// of them is a plain ack and nothing in the batch was returned.
    pub(crate) fn for_request(&self, mine: &[Confirmed]) -> Result<(), QueueError> {
        let mut nacked = 0_usize;
        for confirmation in mine {
            match confirmation {
                Confirmed::Failed(error) => {
                    return Err(QueueError::Unavailable(format!(
                        "the broker connection failed before confirming: {error}"
                    )))
                }
                Confirmed::Unconfirmed => {
                    return Err(QueueError::Unavailable(
                        "the channel was not in confirm mode".into(),
                    ))
                }
                Confirmed::Nack => nacked += 1,
                Confirmed::Ack | Confirmed::Returned(_) => {}
            }
        }
        if nacked > 0 {
            return Err(QueueError::Rejected(format!(
                "the broker refused {nacked} of {} tasks",
                mine.len()
            )));
        }
        if let Some(returned) = &self.returned {
            return Err(QueueError::Rejected(returned.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_acks_in_a_clean_batch_succeed() {
        let clean = [Confirmed::Ack, Confirmed::Ack];
        assert!(BatchVerdict::of(&clean).for_request(&clean).is_ok());

        let nacked = [Confirmed::Ack, Confirmed::Nack];
        let verdict = BatchVerdict::of(&nacked);
        assert!(matches!(
            verdict.for_request(&nacked),
            Err(QueueError::Rejected(_))
        ));
        // Nacks carry their own tag, so a neighbour call with only acks still succeeds.
        assert!(verdict.for_request(&nacked[..1]).is_ok());

        for bad in [Confirmed::Unconfirmed, Confirmed::Failed("gone".into())] {
            let batch = [Confirmed::Ack, bad];
            let verdict = BatchVerdict::of(&batch);
            assert!(matches!(
                verdict.for_request(&batch),
                Err(QueueError::Unavailable(_))
            ));
        }
    }

    #[test]
    fn a_return_anywhere_rejects_every_call_of_the_batch() {
        let batch = [
            Confirmed::Ack,
            Confirmed::Returned("unroutable: 312 NO_ROUTE".into()),
        ];
        let verdict = BatchVerdict::of(&batch);
        // The first call's own confirm is a plain ack, but lapin may have attached the
        // other call's return to the wrong confirm: neither may succeed.
        assert!(matches!(
            verdict.for_request(&batch[..1]),
            Err(QueueError::Rejected(message)) if message.contains("312")
        ));
        assert!(matches!(
            verdict.for_request(&batch[1..]),
            Err(QueueError::Rejected(_))
        ));
    }
}
