//! What real money needs besides the payment row:
//!
//! - on `payments`: the provider's payment intent (refunds and disputes name
//!   it), the connected account a destination charge pays, when its
//!   checkout opened and when reconciliation looks next, the refunds
//!   decided (`refund_decided_minor`, the guard against refunding more than
//!   was paid; `refunded_minor` is what the provider confirmed), and
//!   whether a dispute is open;
//! - on `refunds`: the currency, the retry schedule, the provider's last
//!   answer, the idempotency key of the next attempt and whether the last
//!   attempt's outcome is unknown (the provider failed mid-way);
//! - `disputes`: chargebacks, one row per provider dispute;
//! - `provider_events`: the webhook event ids already acted on, written in
//!   the transaction of their effect, so a duplicate changes nothing;
//! - on `coach_profiles`: the time of the account state payouts were last
//!   set from, so an older `account.updated` never overwrites a newer one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Payments {
    Table,
    Status,
    CreatedAt,
    ProviderRef,
    ProviderPaymentIntent,
    TransferDestination,
    CheckoutOpenedAt,
    NextCheckAt,
    RefundDecidedMinor,
    RefundedMinor,
    Disputed,
}

#[derive(DeriveIden)]
enum Refunds {
    Table,
    Currency,
    IdempotencyKey,
    OutcomeUnknown,
    Status,
    ProviderRef,
    NextAttemptAt,
    LastError,
}

#[derive(DeriveIden)]
enum Disputes {
    Table,
    Id,
    PaymentId,
    ProviderRef,
    AmountMinor,
    Currency,
    Status,
    Reason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ProviderEvents {
    Table,
    Id,
    Kind,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum CoachProfiles {
    Table,
    StripeAccountId,
    PayoutsUpdatedS,
}

#[derive(DeriveIden)]
enum PaymentsRef {
    #[sea_orm(iden = "payments")]
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one change per ALTER TABLE.
        let payment_columns = [
            ColumnDef::new(Payments::ProviderPaymentIntent)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::TransferDestination)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::CheckoutOpenedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::NextCheckAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Payments::RefundDecidedMinor)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Payments::Disputed)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ];
        for mut col in payment_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Payments::Table)
                        .add_column(&mut col)
                        .to_owned(),
                )
                .await?;
        }
        // Refunds decided so far were counted in `refunded_minor`.
        manager
            .exec_stmt(
                Query::update()
                    .table(Payments::Table)
                    .value(
                        Payments::RefundDecidedMinor,
                        Expr::col(Payments::RefundedMinor),
                    )
                    .to_owned(),
            )
            .await?;
        for mut col in [
            ColumnDef::new(Refunds::NextAttemptAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Refunds::LastError)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Refunds::Currency)
                .string()
                .not_null()
                .default("")
                .to_owned(),
            ColumnDef::new(Refunds::IdempotencyKey)
                .string()
                .not_null()
                .default("")
                .to_owned(),
            ColumnDef::new(Refunds::OutcomeUnknown)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Refunds::Table)
                        .add_column(&mut col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE refunds SET currency = \
                 (SELECT p.currency FROM payments p WHERE p.id = refunds.payment_id)",
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(CoachProfiles::Table)
                    .add_column(
                        ColumnDef::new(CoachProfiles::PayoutsUpdatedS)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Disputes::Table)
                    .col(string(Disputes::Id).primary_key())
                    .col(string(Disputes::PaymentId))
                    .col(string_uniq(Disputes::ProviderRef))
                    .col(big_integer(Disputes::AmountMinor))
                    .col(string(Disputes::Currency))
                    .col(string(Disputes::Status))
                    .col(string(Disputes::Reason))
                    .col(timestamp_with_time_zone(Disputes::CreatedAt))
                    .col(timestamp_with_time_zone(Disputes::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Disputes::Table, Disputes::PaymentId)
                            .to(PaymentsRef::Table, PaymentsRef::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ProviderEvents::Table)
                    .col(string(ProviderEvents::Id).primary_key())
                    .col(string(ProviderEvents::Kind))
                    .col(timestamp_with_time_zone(ProviderEvents::ReceivedAt))
                    .to_owned(),
            )
            .await?;

        let indexes = [
            Index::create()
                .name("payments_status_created_idx")
                .table(Payments::Table)
                .col(Payments::Status)
                .col(Payments::CreatedAt)
                .to_owned(),
            Index::create()
                .name("payments_provider_ref_idx")
                .table(Payments::Table)
                .col(Payments::ProviderRef)
                .to_owned(),
            Index::create()
                .name("payments_payment_intent_idx")
                .table(Payments::Table)
                .col(Payments::ProviderPaymentIntent)
                .to_owned(),
            Index::create()
                .name("refunds_status_next_idx")
                .table(Refunds::Table)
                .col(Refunds::Status)
                .col(Refunds::NextAttemptAt)
                .to_owned(),
            Index::create()
                .name("refunds_provider_ref_idx")
                .table(Refunds::Table)
                .col(Refunds::ProviderRef)
                .to_owned(),
            Index::create()
                .name("disputes_payment_idx")
                .table(Disputes::Table)
                .col(Disputes::PaymentId)
                .to_owned(),
            Index::create()
                .name("provider_events_received_idx")
                .table(ProviderEvents::Table)
                .col(ProviderEvents::ReceivedAt)
                .to_owned(),
            Index::create()
                .name("coach_profiles_stripe_account_idx")
                .table(CoachProfiles::Table)
                .col(CoachProfiles::StripeAccountId)
                .unique()
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }
}
