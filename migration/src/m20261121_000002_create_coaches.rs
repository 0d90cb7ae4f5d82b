//! Coach profiles and what hangs off them: categories, weekly availability,
//! reviews, packages and sponsorships, with an index for every search filter
//! and sort (the old system had none).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CoachProfiles {
    Table,
    Id,
    UserId,
    MarketId,
    DisplayName,
    Headline,
    Bio,
    HourlyRateMinor,
    Currency,
    SessionDurations,
    Timezone,
    MeetingUrl,
    Status,
    Published,
    RejectionReason,
    PayoutsEnabled,
    StripeAccountId,
    RatingCount,
    RatingSum,
    RatingScore,
    SponsoredUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CoachCategories {
    Table,
    CoachId,
    CategoryId,
}

#[derive(DeriveIden)]
enum AvailabilityRules {
    Table,
    Id,
    CoachId,
    Weekday,
    StartMinute,
    EndMinute,
}

#[derive(DeriveIden)]
enum Reviews {
    Table,
    Id,
    CoachId,
    ConsumerId,
    BookingId,
    Rating,
    Comment,
    CoachResponse,
    Hidden,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Packages {
    Table,
    Id,
    CoachId,
    Name,
    SessionCount,
    PriceMinor,
    Currency,
    ValidityDays,
    Active,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SponsorshipPlans {
    Table,
    Id,
    MarketId,
    Name,
    DurationDays,
    PriceMinor,
    Currency,
}

#[derive(DeriveIden)]
enum Sponsorships {
    Table,
    Id,
    CoachId,
    PlanId,
    Status,
    StartsAt,
    EndsAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Markets {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Categories {
    Table,
    Id,
}

/// (id, market id, name, days, price in minor units, currency)
const PLANS: &[(&str, &str, &str, i32, i64, &str)] = &[
    (
        "0193a000-0000-7000-8002-000000000001",
        "0193a000-0000-7000-8000-000000000001",
        "Spotlight week",
        7,
        4_900,
        "USD",
    ),
    (
        "0193a000-0000-7000-8002-000000000002",
        "0193a000-0000-7000-8000-000000000001",
        "Spotlight month",
        30,
        14_900,
        "USD",
    ),
    (
        "0193a000-0000-7000-8002-000000000003",
        "0193a000-0000-7000-8000-000000000002",
        "Spotlight week",
        7,
        99_900,
        "INR",
    ),
    (
        "0193a000-0000-7000-8002-000000000004",
        "0193a000-0000-7000-8000-000000000002",
        "Spotlight month",
        30,
        299_900,
        "INR",
    ),
    (
        "0193a000-0000-7000-8002-000000000005",
        "0193a000-0000-7000-8000-000000000003",
        "Spotlight week",
        7,
        3_900,
        "GBP",
    ),
    (
        "0193a000-0000-7000-8002-000000000006",
        "0193a000-0000-7000-8000-000000000003",
        "Spotlight month",
        30,
        11_900,
        "GBP",
    ),
];

async fn index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden,
    cols: Vec<DynIden>,
    unique: bool,
) -> Result<(), DbErr> {
    let mut stmt = Index::create().name(name).table(table).to_owned();
    for c in cols {
        stmt.col(c);
    }
    if unique {
        stmt.unique();
    }
    manager.create_index(stmt).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CoachProfiles::Table)
                    .col(string(CoachProfiles::Id).primary_key())
                    .col(string_uniq(CoachProfiles::UserId))
                    .col(string(CoachProfiles::MarketId))
                    .col(string(CoachProfiles::DisplayName))
                    .col(string(CoachProfiles::Headline))
                    .col(text(CoachProfiles::Bio))
                    .col(big_integer(CoachProfiles::HourlyRateMinor))
                    .col(string(CoachProfiles::Currency))
                    .col(string(CoachProfiles::SessionDurations))
                    .col(string(CoachProfiles::Timezone))
                    .col(string_null(CoachProfiles::MeetingUrl))
                    .col(string(CoachProfiles::Status))
                    .col(boolean(CoachProfiles::Published).default(false))
                    .col(text_null(CoachProfiles::RejectionReason))
                    .col(boolean(CoachProfiles::PayoutsEnabled).default(false))
                    .col(string_null(CoachProfiles::StripeAccountId))
                    .col(integer(CoachProfiles::RatingCount).default(0))
                    .col(big_integer(CoachProfiles::RatingSum).default(0))
                    .col(big_integer(CoachProfiles::RatingScore).default(0))
                    .col(timestamp_with_time_zone_null(CoachProfiles::SponsoredUntil))
                    .col(timestamp_with_time_zone(CoachProfiles::CreatedAt))
                    .col(timestamp_with_time_zone(CoachProfiles::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CoachProfiles::Table, CoachProfiles::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CoachProfiles::Table, CoachProfiles::MarketId)
                            .to(Markets::Table, Markets::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Search: visibility + market first, then each sort's key.
        use CoachProfiles as C;
        for (name, cols) in [
            (
                "coach_profiles_status_published_market_score_idx",
                vec![C::Status, C::Published, C::MarketId, C::RatingScore, C::Id],
            ),
            (
                "coach_profiles_status_published_market_rate_idx",
                vec![
                    C::Status,
                    C::Published,
                    C::MarketId,
                    C::HourlyRateMinor,
                    C::Id,
                ],
            ),
            (
                "coach_profiles_status_published_market_id_idx",
                vec![C::Status, C::Published, C::MarketId, C::Id],
            ),
            ("coach_profiles_status_id_idx", vec![C::Status, C::Id]),
        ] {
            index(
                manager,
                name,
                C::Table,
                cols.into_iter().map(|c| c.into_iden()).collect(),
                false,
            )
            .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(CoachCategories::Table)
                    .col(string(CoachCategories::CoachId))
                    .col(string(CoachCategories::CategoryId))
                    .primary_key(
                        Index::create()
                            .col(CoachCategories::CoachId)
                            .col(CoachCategories::CategoryId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CoachCategories::Table, CoachCategories::CoachId)
                            .to(CoachProfiles::Table, CoachProfiles::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CoachCategories::Table, CoachCategories::CategoryId)
                            .to(Categories::Table, Categories::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "coach_categories_category_coach_idx",
            CoachCategories::Table,
            vec![
                CoachCategories::CategoryId.into_iden(),
                CoachCategories::CoachId.into_iden(),
            ],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(AvailabilityRules::Table)
                    .col(string(AvailabilityRules::Id).primary_key())
                    .col(string(AvailabilityRules::CoachId))
                    .col(small_integer(AvailabilityRules::Weekday))
                    .col(small_integer(AvailabilityRules::StartMinute))
                    .col(small_integer(AvailabilityRules::EndMinute))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AvailabilityRules::Table, AvailabilityRules::CoachId)
                            .to(CoachProfiles::Table, CoachProfiles::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "availability_rules_coach_idx",
            AvailabilityRules::Table,
            vec![AvailabilityRules::CoachId.into_iden()],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Reviews::Table)
                    .col(string(Reviews::Id).primary_key())
                    .col(string(Reviews::CoachId))
                    .col(string(Reviews::ConsumerId))
                    .col(string_null(Reviews::BookingId))
                    .col(small_integer(Reviews::Rating))
                    .col(text(Reviews::Comment))
                    .col(text_null(Reviews::CoachResponse))
                    .col(boolean(Reviews::Hidden).default(false))
                    .col(timestamp_with_time_zone(Reviews::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Reviews::Table, Reviews::CoachId)
                            .to(CoachProfiles::Table, CoachProfiles::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Reviews::Table, Reviews::ConsumerId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // One review per booking (NULLs, for imported reviews, are distinct).
        index(
            manager,
            "reviews_booking_key",
            Reviews::Table,
            vec![Reviews::BookingId.into_iden()],
            true,
        )
        .await?;
        index(
            manager,
            // Newest first per coach: ids are UUIDv7, so id order is time order.
            "reviews_coach_hidden_id_idx",
            Reviews::Table,
            vec![
                Reviews::CoachId.into_iden(),
                Reviews::Hidden.into_iden(),
                Reviews::Id.into_iden(),
            ],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Packages::Table)
                    .col(string(Packages::Id).primary_key())
                    .col(string(Packages::CoachId))
                    .col(string(Packages::Name))
                    .col(integer(Packages::SessionCount))
                    .col(big_integer(Packages::PriceMinor))
                    .col(string(Packages::Currency))
                    .col(integer(Packages::ValidityDays))
                    .col(boolean(Packages::Active).default(true))
                    .col(timestamp_with_time_zone(Packages::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Packages::Table, Packages::CoachId)
                            .to(CoachProfiles::Table, CoachProfiles::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "packages_coach_idx",
            Packages::Table,
            vec![Packages::CoachId.into_iden()],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(SponsorshipPlans::Table)
                    .col(string(SponsorshipPlans::Id).primary_key())
                    .col(string(SponsorshipPlans::MarketId))
                    .col(string(SponsorshipPlans::Name))
                    .col(integer(SponsorshipPlans::DurationDays))
                    .col(big_integer(SponsorshipPlans::PriceMinor))
                    .col(string(SponsorshipPlans::Currency))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SponsorshipPlans::Table, SponsorshipPlans::MarketId)
                            .to(Markets::Table, Markets::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sponsorships::Table)
                    .col(string(Sponsorships::Id).primary_key())
                    .col(string(Sponsorships::CoachId))
                    .col(string(Sponsorships::PlanId))
                    .col(string(Sponsorships::Status))
                    .col(timestamp_with_time_zone_null(Sponsorships::StartsAt))
                    .col(timestamp_with_time_zone_null(Sponsorships::EndsAt))
                    .col(timestamp_with_time_zone(Sponsorships::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sponsorships::Table, Sponsorships::CoachId)
                            .to(CoachProfiles::Table, CoachProfiles::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sponsorships::Table, Sponsorships::PlanId)
                            .to(SponsorshipPlans::Table, SponsorshipPlans::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "sponsorships_coach_status_idx",
            Sponsorships::Table,
            vec![
                Sponsorships::CoachId.into_iden(),
                Sponsorships::Status.into_iden(),
                Sponsorships::EndsAt.into_iden(),
            ],
            false,
        )
        .await?;

        let mut plans = Query::insert()
            .into_table(SponsorshipPlans::Table)
            .columns([
                SponsorshipPlans::Id,
                SponsorshipPlans::MarketId,
                SponsorshipPlans::Name,
                SponsorshipPlans::DurationDays,
                SponsorshipPlans::PriceMinor,
                SponsorshipPlans::Currency,
            ])
            .to_owned();
        for (id, market, name, days, price, currency) in PLANS {
            plans.values_panic([
                (*id).into(),
                (*market).into(),
                (*name).into(),
                (*days).into(),
                (*price).into(),
                (*currency).into(),
            ]);
        }
        manager.exec_stmt(plans).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Sponsorships::Table.into_iden(),
            SponsorshipPlans::Table.into_iden(),
            Packages::Table.into_iden(),
            Reviews::Table.into_iden(),
            AvailabilityRules::Table.into_iden(),
            CoachCategories::Table.into_iden(),
            CoachProfiles::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
