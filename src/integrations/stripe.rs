//! The Stripe payment provider: Checkout sessions as destination charges to
//! the coach's connected (Express) account, refunds that reverse the
//! transfer and the platform fee, Connect onboarding, and the translation
//! of signed webhook events into the domain's [`ProviderEvent`]s.
//!
//! Every create call carries an idempotency key derived from our own
//! record id (`checkout-<payment>`, `refund-<refund>`, `account-<coach>`),
//! so a retry of the same request never creates a second object. Each call
//! is attempted once here, with a timeout; retrying is the caller's
//! decision (a refund job with backoff, a client retrying `bookHold`).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, CreateCheckoutSessionPaymentIntentDataTransferData,
    ProductData, RetrieveCheckoutSession,
};
use stripe_connect::account::{
    CreateAccount, CreateAccountCapabilities, CreateAccountCapabilitiesCardPayments,
    CreateAccountCapabilitiesTransfers, CreateAccountType,
};
use stripe_connect::account_link::{CreateAccountLink, CreateAccountLinkType};
use stripe_core::refund::{CreateRefund, ListRefund};
use stripe_shared::{CheckoutSession, CheckoutSessionMode, CheckoutSessionPaymentStatus};
use stripe_types::Currency;
use stripe_webhook::{EventObject, Webhook, WebhookError};

use crate::domain::payment::events::{PaymentRef, ProviderEvent};
use crate::domain::payment::refund::{ProviderRefundStatus, RefundReport};
use crate::domain::payment::{
    Checkout, CheckoutOutcome, CheckoutRequest, CheckoutState, Failure, Paid, PaymentProvider,
    ProviderError, ProviderKind, RefundOutcome, RefundRequest,
};

pub struct StripeProvider {
    client: Client,
}

impl StripeProvider {
    /// `api_base` ends with a slash (the client appends `v1/...`).
    pub fn new(secret_key: &str, api_base: &str, timeout: Duration) -> Result<Self, String> {
        let client = ClientBuilder::new(secret_key)
            .url(api_base)
            .timeout(timeout)
            .build()
            .map_err(|e| format!("the Stripe client could not be built: {}", describe(&e)))?;
        Ok(StripeProvider { client })
    }
}

/// A Stripe failure for logs and admins: the status and Stripe's own
/// error, never a key or a request body.
fn describe(e: &StripeError) -> String {
    match e {
        StripeError::Stripe(api, status) => format!(
            "Stripe answered {status}: {} {} {}",
            api.type_.as_str(),
            api.code.as_ref().map(|c| c.as_str()).unwrap_or(""),
            api.message.as_deref().unwrap_or("")
        ),
        StripeError::Timeout => "Stripe did not answer in time".into(),
        StripeError::JSONDeserialize(m) => format!("Stripe's answer could not be read: {m}"),
        StripeError::ClientError(m) => format!("Stripe could not be reached: {m}"),
        StripeError::ConfigError(m) => format!("Stripe client configuration: {m}"),
    }
}

/// What a failure means for a retry (Stripe's idempotency layer stores
/// the answer of a request that reached it, errors included).
fn failed(e: StripeError) -> ProviderError {
    let failure = match &e {
        // Rate limited, or the key in use by a concurrent request: Stripe
        // did nothing and stored nothing.
        StripeError::Stripe(_, 409 | 429) => Failure::Unanswered,
        StripeError::Stripe(_, status) if *status >= 500 => Failure::Unknown,
        StripeError::Stripe(_, _) => Failure::Refused,
        StripeError::ConfigError(_) => Failure::Refused,
        StripeError::Timeout | StripeError::ClientError(_) | StripeError::JSONDeserialize(_) => {
            Failure::Unanswered
        }
    };
    ProviderError::new(failure, describe(&e))
}

fn strategy(key: &str) -> Result<RequestStrategy, ProviderError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| ProviderError::local(e.to_string()))
}

fn key(kind: &str, id: &str) -> Result<RequestStrategy, ProviderError> {
    strategy(&format!("{kind}-{id}"))
}

fn currency(code: &str) -> Result<Currency, ProviderError> {
    Currency::from_str(&code.to_ascii_lowercase())
        .map_err(|_| ProviderError::local(format!("unknown currency {code}")))
}

fn refund_outcome(refund: &stripe_shared::Refund) -> Result<RefundOutcome, ProviderError> {
    let id = refund.id.as_str().to_string();
    match refund.status.as_deref() {
        Some("failed") | Some("canceled") => Err(ProviderError::new(
            Failure::Refused,
            format!(
                "Stripe refused the refund: {}",
                refund
                    .failure_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            ),
        )),
        // Confirmed by `refund.updated` / `charge.refunded`.
        _ => Ok(RefundOutcome::Submitted(id)),
    }
}

fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

#[async_trait::async_trait]
impl PaymentProvider for StripeProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Stripe
    }

    async fn create_checkout(&self, req: CheckoutRequest<'_>) -> Result<Checkout, ProviderError> {
        let purpose_key = format!("{}_id", req.purpose.as_str().to_lowercase());
        let meta = metadata(&[
            ("payment_id", req.payment_id),
            ("purpose", req.purpose.as_str()),
            (&purpose_key, req.purpose.id()),
        ]);
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency(req.currency)?);
        price.unit_amount = Some(req.amount_minor);
        price.product_data = Some(ProductData::new(req.description));
        let mut line = CreateCheckoutSessionLineItems::new();
        line.price_data = Some(price);
        line.quantity = Some(1);
        let mut intent = CreateCheckoutSessionPaymentIntentData::new();
        intent.metadata = Some(meta.clone());
        if let Some(destination) = req.destination_account {
            intent.application_fee_amount = Some(req.application_fee_minor);
            intent.transfer_data = Some(CreateCheckoutSessionPaymentIntentDataTransferData::new(
                destination,
            ));
        }
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .line_items(vec![line])
            .payment_intent_data(intent)
            .client_reference_id(req.payment_id)
            .metadata(meta)
            .success_url(req.success_url)
            .cancel_url(req.cancel_url)
            .expires_at(req.expires_at.timestamp())
            .customize()
            .request_strategy(key("checkout", req.payment_id)?)
            .send(&self.client)
            .await
            .map_err(failed)?;
        let url = session.url.clone().ok_or_else(|| {
            ProviderError::new(
                Failure::Unanswered,
                "Stripe returned a checkout session without a URL",
            )
        })?;
        Ok(Checkout {
            provider_ref: session.id.as_str().to_string(),
            url,
        })
    }

    async fn checkout_state(
        &self,
        provider_ref: &str,
    ) -> Result<Option<CheckoutState>, ProviderError> {
        let session = RetrieveCheckoutSession::new(provider_ref)
            .send(&self.client)
            .await
            .map_err(failed)?;
        let outcome = match (&session.status, &session.payment_status) {
            (_, CheckoutSessionPaymentStatus::Paid) => CheckoutOutcome::Paid,
            (Some(stripe_shared::CheckoutSessionStatus::Expired), _) => CheckoutOutcome::Expired,
            (Some(stripe_shared::CheckoutSessionStatus::Complete), _) => {
                CheckoutOutcome::AwaitingPayment
            }
            _ => CheckoutOutcome::Open,
        };
        Ok(Some(CheckoutState {
            outcome,
            payment_intent: session.payment_intent.as_ref().map(|p| p.id().to_string()),
            amount_total: session.amount_total,
            currency: session.currency.as_ref().map(|c| c.to_string()),
        }))
    }

    async fn refund(&self, req: RefundRequest<'_>) -> Result<RefundOutcome, ProviderError> {
        let intent = req
            .payment_intent
            .ok_or_else(|| ProviderError::local("the payment has no Stripe payment intent yet"))?;
        let mut create = CreateRefund::new()
            .payment_intent(intent)
            .amount(req.amount_minor)
            .metadata(metadata(&[
                ("refund_id", req.refund_id),
                ("payment_id", req.payment_id),
            ]));
        if req.reverse_transfer {
            create = create.reverse_transfer(true).refund_application_fee(true);
        }
        let refund = create
            .customize()
            .request_strategy(strategy(req.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(failed)?;
        refund_outcome(&refund)
    }

    async fn find_refund(
        &self,
        payment_intent: &str,
        refund_id: &str,
    ) -> Result<Option<RefundOutcome>, ProviderError> {
        let refunds = ListRefund::new()
            .payment_intent(payment_intent)
            .limit(100)
            .send(&self.client)
            .await
            .map_err(failed)?;
        refunds
            .data
            .iter()
            .find(|r| meta(r.metadata.as_ref(), "refund_id").as_deref() == Some(refund_id))
            .map(refund_outcome)
            .transpose()
    }

    async fn create_payout_account(
        &self,
        coach_id: &str,
        email: &str,
        country: &str,
    ) -> Result<String, ProviderError> {
        let mut capabilities = CreateAccountCapabilities::new();
        let mut transfers = CreateAccountCapabilitiesTransfers::new();
        transfers.requested = Some(true);
        capabilities.transfers = Some(transfers);
        let mut cards = CreateAccountCapabilitiesCardPayments::new();
        cards.requested = Some(true);
        capabilities.card_payments = Some(cards);
        let account = CreateAccount::new()
            .type_(CreateAccountType::Express)
            .country(country)
            .email(email)
            .capabilities(capabilities)
            .metadata(metadata(&[("coach_id", coach_id)]))
            .customize()
            .request_strategy(key("account", coach_id)?)
            .send(&self.client)
            .await
            .map_err(failed)?;
        Ok(account.id.as_str().to_string())
    }

    async fn payout_onboarding_link(
        &self,
        account: &str,
        refresh_url: &str,
        return_url: &str,
    ) -> Result<String, ProviderError> {
        // A link is single-use and short-lived: each call makes a new one,
        // under a key of its own (a retry of this very request is the same).
        let link = CreateAccountLink::new(account, CreateAccountLinkType::AccountOnboarding)
            .refresh_url(refresh_url)
            .return_url(return_url)
            .customize()
            .request_strategy(key(
                "account-link",
                &format!("{account}-{}", uuid::Uuid::now_v7()),
            )?)
            .send(&self.client)
            .await
            .map_err(failed)?;
        Ok(link.url)
    }
}

/// Why a webhook request was refused (answered 400).
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// No signature header, or one that is not Stripe's format.
    MissingSignature,
    /// No secret matched, or the timestamp is outside the tolerance.
    BadSignature,
    /// Signed, but not an event this build can read.
    Unreadable(String),
}

/// A verified event: its id, type and what it means for the domain.
pub struct VerifiedEvent {
    pub id: String,
    pub kind: String,
    pub event: ProviderEvent,
}

/// Verifies `Stripe-Signature` on the raw body with each secret in turn
/// (the platform endpoint's and the Connect endpoint's), before anything
/// is parsed; the library compares in constant time, accepts any `v1` of
/// the header and a timestamp within 300 s.
pub fn verify(
    secrets: &[&str],
    payload: &str,
    signature: Option<&str>,
) -> Result<VerifiedEvent, Rejected> {
    let signature = signature
        .filter(|s| s.contains("t=") && s.contains("v1="))
        .ok_or(Rejected::MissingSignature)?;
    let mut outcome = Err(Rejected::BadSignature);
    for secret in secrets {
        match Webhook::construct_event(payload, signature, secret) {
            Ok(event) => {
                outcome = Ok(event);
                break;
            }
            // Only reached once the signature and its age were checked.
            Err(WebhookError::BadParse(m)) => return unreadable(payload, m),
            Err(WebhookError::BadTimestamp(_)) => return Err(Rejected::BadSignature),
            Err(_) => {}
        }
    }
    let event = outcome?;
    Ok(VerifiedEvent {
        id: event.id.as_str().to_string(),
        kind: event.type_.as_str().to_string(),
        event: translate(event.data.object, event.created, event.account),
    })
}

/// The event types the server acts on (the endpoints subscribe to these).
pub const USED_EVENTS: [&str; 14] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "payment_intent.payment_failed",
    "charge.refunded",
    "charge.refund.updated",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "account.updated",
    "account.application.deauthorized",
];

/// A signed event this build could not read: one of a type we do not use
/// is acknowledged and ignored (its shape is not our concern); one we use
/// is refused, so Stripe retries it and an operator sees it.
fn unreadable(payload: &str, why: String) -> Result<VerifiedEvent, Rejected> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        id: String,
        #[serde(rename = "type")]
        kind: String,
    }
    match serde_json::from_str::<Envelope>(payload) {
        Ok(e) if !USED_EVENTS.contains(&e.kind.as_str()) => Ok(VerifiedEvent {
            id: e.id,
            kind: e.kind,
            event: ProviderEvent::Other,
        }),
        _ => Err(Rejected::Unreadable(why)),
    }
}

fn meta(m: Option<&HashMap<String, String>>, k: &str) -> Option<String> {
    m.and_then(|m| m.get(k)).cloned()
}

fn session_ref(s: &CheckoutSession) -> PaymentRef {
    PaymentRef {
        payment_id: s
            .client_reference_id
            .clone()
            .or_else(|| meta(s.metadata.as_ref(), "payment_id")),
        checkout: Some(s.id.as_str().to_string()),
        payment_intent: s.payment_intent.as_ref().map(|p| p.id().to_string()),
    }
}

fn paid_session(s: &CheckoutSession) -> ProviderEvent {
    let payment = session_ref(s);
    // Only money that arrived fulfils; a completed session paid by a
    // delayed method waits for `async_payment_succeeded`.
    if s.payment_status != CheckoutSessionPaymentStatus::Paid {
        return ProviderEvent::CheckoutAwaitingPayment { payment };
    }
    ProviderEvent::CheckoutPaid {
        paid: Paid {
            payment_intent: payment.payment_intent.clone(),
            amount_minor: s.amount_total,
            currency: s.currency.as_ref().map(|c| c.to_string()),
        },
        payment,
    }
}

fn refund_report(r: &stripe_shared::Refund) -> ProviderEvent {
    let status = match r.status.as_deref() {
        Some("succeeded") => ProviderRefundStatus::Succeeded,
        Some("failed") | Some("canceled") => ProviderRefundStatus::Failed,
        _ => ProviderRefundStatus::Pending,
    };
    ProviderEvent::Refund(RefundReport {
        provider_ref: r.id.as_str().to_string(),
        refund_id: meta(r.metadata.as_ref(), "refund_id"),
        status,
        failure: r.failure_reason.clone(),
    })
}

fn translate(object: EventObject, created: i64, account: Option<String>) -> ProviderEvent {
    match object {
        EventObject::CheckoutSessionCompleted(s)
        | EventObject::CheckoutSessionAsyncPaymentSucceeded(s) => paid_session(&s),
        EventObject::CheckoutSessionExpired(s) => ProviderEvent::CheckoutAbandoned {
            payment: session_ref(&s),
            reason: "the checkout expired",
        },
        EventObject::CheckoutSessionAsyncPaymentFailed(s) => ProviderEvent::CheckoutAbandoned {
            payment: session_ref(&s),
            reason: "the payment failed",
        },
        EventObject::PaymentIntentPaymentFailed(pi) => ProviderEvent::PaymentAttemptFailed {
            payment: PaymentRef {
                payment_id: pi.metadata.get("payment_id").cloned(),
                checkout: None,
                payment_intent: Some(pi.id.as_str().to_string()),
            },
            message: pi
                .last_payment_error
                .as_ref()
                .and_then(|e| e.message.clone()),
        },
        EventObject::ChargeRefunded(c) => ProviderEvent::ChargeRefunded {
            payment: PaymentRef {
                payment_id: c.metadata.get("payment_id").cloned(),
                checkout: None,
                payment_intent: c.payment_intent.as_ref().map(|p| p.id().to_string()),
            },
            amount_refunded: c.amount_refunded,
        },
        EventObject::RefundUpdated(r)
        | EventObject::RefundFailed(r)
        | EventObject::ChargeRefundUpdated(r) => refund_report(&r),
        EventObject::ChargeDisputeCreated(d)
        | EventObject::ChargeDisputeUpdated(d)
        | EventObject::ChargeDisputeClosed(d) => ProviderEvent::Dispute {
            payment: PaymentRef {
                payment_id: None,
                checkout: None,
                payment_intent: d.payment_intent.as_ref().map(|p| p.id().to_string()),
            },
            provider_ref: d.id.as_str().to_string(),
            amount_minor: d.amount,
            currency: d.currency.to_string(),
            status: d.status.as_str().to_string(),
            reason: d.reason.clone(),
        },
        EventObject::AccountUpdated(a) => ProviderEvent::PayoutAccount {
            account: a.id.as_str().to_string(),
            charges_enabled: a.charges_enabled.unwrap_or(false),
            payouts_enabled: a.payouts_enabled.unwrap_or(false),
            at: created,
        },
        // The coach disconnected their account from the platform.
        EventObject::AccountApplicationDeauthorized(_) => match account {
            Some(account) => ProviderEvent::PayoutAccount {
                account,
                charges_enabled: false,
                payouts_enabled: false,
                at: created,
            },
            None => ProviderEvent::Other,
        },
        _ => ProviderEvent::Other,
    }
}
