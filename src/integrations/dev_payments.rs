//! The development payment provider: checkout is a local page
//! (`/dev/checkout/{paymentId}`) whose form completes the payment; refunds
//! succeed at once; payout onboarding is a local page too
//! (`/dev/payouts/{account}`). Configuration refuses it in production.

use crate::domain::payment::{
    Checkout, CheckoutRequest, CheckoutState, PaymentProvider, ProviderError, ProviderKind,
    RefundOutcome, RefundRequest,
};

pub struct DevPaymentProvider {
    public_base_url: String,
}

impl DevPaymentProvider {
    pub fn new(public_base_url: &str) -> Self {
        DevPaymentProvider {
            public_base_url: public_base_url.trim_end_matches('/').to_string(),
        }
    }
}

#[async_trait::async_trait]
impl PaymentProvider for DevPaymentProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Dev
    }

    async fn create_checkout(&self, req: CheckoutRequest<'_>) -> Result<Checkout, ProviderError> {
        Ok(Checkout {
            provider_ref: format!("dev_cs_{}", req.payment_id),
            url: format!("{}/dev/checkout/{}", self.public_base_url, req.payment_id),
        })
    }

    async fn checkout_state(&self, _: &str) -> Result<Option<CheckoutState>, ProviderError> {
        Ok(None)
    }

    async fn refund(&self, req: RefundRequest<'_>) -> Result<RefundOutcome, ProviderError> {
        Ok(RefundOutcome::Succeeded(format!(
            "dev_re_{}",
            req.refund_id
        )))
    }

    async fn find_refund(&self, _: &str, _: &str) -> Result<Option<RefundOutcome>, ProviderError> {
        Ok(None)
    }

    async fn create_payout_account(
        &self,
        coach_id: &str,
        _email: &str,
        _country: &str,
    ) -> Result<String, ProviderError> {
        Ok(format!("acct_dev_{}", coach_id.replace('-', "")))
    }

    async fn payout_onboarding_link(
        &self,
        account: &str,
        _refresh_url: &str,
        _return_url: &str,
    ) -> Result<String, ProviderError> {
        Ok(format!("{}/dev/payouts/{account}", self.public_base_url))
    }
}
