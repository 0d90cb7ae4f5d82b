//! The development payment provider: checkout is a local page
//! (`/dev/checkout/{paymentId}`) whose form completes the payment; refunds
//! succeed at once. Configuration refuses it in production.

use crate::domain::payment::{
    Checkout, CheckoutRequest, PaymentProvider, ProviderError, ProviderKind, RefundRequest,
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

    async fn refund(&self, req: RefundRequest<'_>) -> Result<String, ProviderError> {
        Ok(format!("dev_re_{}", req.refund_id))
    }
}
