//! The email templates: `<kind>.subject.txt`, `<kind>.html` (escaped) and
//! `<kind>.txt`. Every value comes from the outbox row's data.

pub const ALL: &[(&str, &str)] = &[
    (
        "layout.html",
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{% block title %}{% endblock %}</title></head>
<body style="font-family: -apple-system, Segoe UI, Roboto, sans-serif; color: #1f2933; max-width: 560px; margin: 0 auto; padding: 24px;">
<p style="font-weight: 600; color: #3b5bdb;">Maestro Hub</p>
{% block body %}{% endblock %}
<p style="color: #7b8794; font-size: 12px; margin-top: 32px;">You receive this email because of your Maestro Hub account.</p>
</body></html>"#,
    ),
    // Email verification.
    ("verify_email.subject.txt", "Confirm your email address"),
    (
        "verify_email.html",
        r#"{% extends "layout.html" %}{% block title %}Confirm your email{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>Please confirm your email address to book and pay for sessions.</p>
<p><a href="{{ link }}">Confirm my email address</a></p>
<p>The link works once, for 24 hours. If you did not create an account, ignore this email.</p>
{% endblock %}"#,
    ),
    (
        "verify_email.txt",
        "Hello {{ name }},\n\nPlease confirm your email address to book and pay for sessions:\n\n{{ link }}\n\nThe link works once, for 24 hours. If you did not create an account, ignore this email.\n",
    ),
    // Password reset.
    ("password_reset.subject.txt", "Reset your password"),
    (
        "password_reset.html",
        r#"{% extends "layout.html" %}{% block title %}Reset your password{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>Someone asked to reset the password of your account. If it was you:</p>
<p><a href="{{ link }}">Choose a new password</a></p>
<p>The link works once, for one hour. Resetting signs you out everywhere. If it was not you, ignore this email: your password stays as it is.</p>
{% endblock %}"#,
    ),
    (
        "password_reset.txt",
        "Hello {{ name }},\n\nSomeone asked to reset the password of your account. If it was you, choose a new password here:\n\n{{ link }}\n\nThe link works once, for one hour. Resetting signs you out everywhere. If it was not you, ignore this email.\n",
    ),
    // Booking confirmed (to each side).
    (
        "booking_confirmed.subject.txt",
        "Booking confirmed: {{ start_at | when(tz) }}",
    ),
    (
        "booking_confirmed.html",
        r#"{% extends "layout.html" %}{% block title %}Booking confirmed{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>Your {{ minutes }}-minute session {% if role == "coach" %}with your client {% else %}with {% endif %}<strong>{{ other_name }}</strong> is confirmed for <strong>{{ start_at | when(tz) }}</strong>.</p>
<p>Price: {{ amount_minor | money(currency) }}</p>
<p>Join here when it starts: <a href="{{ meeting_url }}">{{ meeting_url }}</a></p>
{% endblock %}"#,
    ),
    (
        "booking_confirmed.txt",
        "Hello {{ name }},\n\nYour {{ minutes }}-minute session with {{ other_name }} is confirmed for {{ start_at | when(tz) }}.\nPrice: {{ amount_minor | money(currency) }}\n\nJoin here when it starts: {{ meeting_url }}\n",
    ),
    // Booking cancelled.
    (
        "booking_cancelled.subject.txt",
        "Booking cancelled: {{ start_at | when(tz) }}",
    ),
    (
        "booking_cancelled.html",
        r#"{% extends "layout.html" %}{% block title %}Booking cancelled{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>The session with <strong>{{ other_name }}</strong> on {{ start_at | when(tz) }} was cancelled{% if reason %}: {{ reason }}{% endif %}.</p>
{% if refund_minor > 0 %}<p>A refund of {{ refund_minor | money(currency) }} is on its way to the card that paid.</p>{% endif %}
{% if credit_returned %}<p>The session's package credit is back in the package: book another time with it.</p>{% endif %}
{% endblock %}"#,
    ),
    (
        "booking_cancelled.txt",
        "Hello {{ name }},\n\nThe session with {{ other_name }} on {{ start_at | when(tz) }} was cancelled{% if reason %}: {{ reason }}{% endif %}.\n{% if refund_minor > 0 %}A refund of {{ refund_minor | money(currency) }} is on its way to the card that paid.\n{% endif %}{% if credit_returned %}The session's package credit is back in the package: book another time with it.\n{% endif %}",
    ),
    // Payment receipt.
    (
        "payment_receipt.subject.txt",
        "Receipt: {{ amount_minor | money(currency) }} to Maestro Hub",
    ),
    (
        "payment_receipt.html",
        r#"{% extends "layout.html" %}{% block title %}Receipt{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>We received your payment of <strong>{{ amount_minor | money(currency) }}</strong> for the session with {{ other_name }} on {{ start_at | when(tz) }}.</p>
<p>Reference: {{ reference }}</p>
{% endblock %}"#,
    ),
    (
        "payment_receipt.txt",
        "Hello {{ name }},\n\nWe received your payment of {{ amount_minor | money(currency) }} for the session with {{ other_name }} on {{ start_at | when(tz) }}.\nReference: {{ reference }}\n",
    ),
    // Reminders (24 h and 1 h before).
    (
        "reminder.subject.txt",
        "In {{ lead }}: your session with {{ other_name }}",
    ),
    (
        "reminder.html",
        r#"{% extends "layout.html" %}{% block title %}Session reminder{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>Your session with <strong>{{ other_name }}</strong> starts in {{ lead }}: {{ start_at | when(tz) }}.</p>
<p>Join here: <a href="{{ meeting_url }}">{{ meeting_url }}</a></p>
{% endblock %}"#,
    ),
    (
        "reminder.txt",
        "Hello {{ name }},\n\nYour session with {{ other_name }} starts in {{ lead }}: {{ start_at | when(tz) }}.\nJoin here: {{ meeting_url }}\n",
    ),
    // Coach approved / rejected.
    (
        "coach_approved.subject.txt",
        "Your coach profile is approved",
    ),
    (
        "coach_approved.html",
        r#"{% extends "layout.html" %}{% block title %}Profile approved{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>Your coach profile is approved. Publish it to appear in search, and set up payouts to take bookings.</p>
{% endblock %}"#,
    ),
    (
        "coach_approved.txt",
        "Hello {{ name }},\n\nYour coach profile is approved. Publish it to appear in search, and set up payouts to take bookings.\n",
    ),
    (
        "coach_rejected.subject.txt",
        "Your coach profile needs changes",
    ),
    (
        "coach_rejected.html",
        r#"{% extends "layout.html" %}{% block title %}Profile not approved{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>Your coach profile was not approved yet. The reviewer wrote:</p>
<blockquote>{{ reason }}</blockquote>
<p>Change your profile and submit it again.</p>
{% endblock %}"#,
    ),
    (
        "coach_rejected.txt",
        "Hello {{ name }},\n\nYour coach profile was not approved yet. The reviewer wrote:\n\n{{ reason }}\n\nChange your profile and submit it again.\n",
    ),
    // A refund issued outside a cancellation.
    (
        "refund_issued.subject.txt",
        "Refund of {{ amount_minor | money(currency) }}",
    ),
    (
        "refund_issued.html",
        r#"{% extends "layout.html" %}{% block title %}Refund{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>We issued a refund of <strong>{{ amount_minor | money(currency) }}</strong> to the card that paid. It usually arrives within 5 to 10 business days.</p>
{% endblock %}"#,
    ),
    (
        "refund_issued.txt",
        "Hello {{ name }},\n\nWe issued a refund of {{ amount_minor | money(currency) }} to the card that paid. It usually arrives within 5 to 10 business days.\n",
    ),
    // A new review, to the coach.
    (
        "review_received.subject.txt",
        "New review: {{ rating }} of 5 from {{ other_name }}",
    ),
    (
        "review_received.html",
        r#"{% extends "layout.html" %}{% block title %}New review{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>{{ other_name }} rated the session on {{ start_at | when(tz) }} <strong>{{ rating }} of 5</strong>.</p>
{% if comment %}<blockquote>{{ comment }}</blockquote>{% endif %}
<p>You can answer it once, from your reviews.</p>
{% endblock %}"#,
    ),
    (
        "review_received.txt",
        "Hello {{ name }},\n\n{{ other_name }} rated the session on {{ start_at | when(tz) }} {{ rating }} of 5.\n{% if comment %}\n{{ comment }}\n{% endif %}\nYou can answer it once, from your reviews.\n",
    ),
    // Receipt of a package or a sponsorship.
    (
        "purchase_receipt.subject.txt",
        "Receipt: {{ amount_minor | money(currency) }} to Maestro Hub",
    ),
    (
        "purchase_receipt.html",
        r#"{% extends "layout.html" %}{% block title %}Receipt{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>We received your payment of <strong>{{ amount_minor | money(currency) }}</strong> for {{ item }}.</p>
<p>Reference: {{ reference }}</p>
{% endblock %}"#,
    ),
    (
        "purchase_receipt.txt",
        "Hello {{ name }},\n\nWe received your payment of {{ amount_minor | money(currency) }} for {{ item }}.\nReference: {{ reference }}\n",
    ),
    // The admins' weekly report.
    (
        "weekly_report.subject.txt",
        "Maestro Hub weekly report: {{ week_start }} to {{ week_end }}",
    ),
    (
        "weekly_report.html",
        r#"{% extends "layout.html" %}{% block title %}Weekly report{% endblock %}{% block body %}
<p>Hello {{ name }},</p>
<p>The week from {{ week_start }} to {{ week_end }} (your time), with the week before in brackets:</p>
<table style="border-collapse: collapse;">
<tr><td>Bookings</td><td><strong>{{ this.bookings }}</strong> ({{ previous.bookings }})</td></tr>
<tr><td>Completed</td><td><strong>{{ this.completed }}</strong> ({{ previous.completed }})</td></tr>
<tr><td>Cancelled</td><td><strong>{{ this.cancelled }}</strong> ({{ previous.cancelled }})</td></tr>
<tr><td>New users</td><td><strong>{{ this.new_users }}</strong> ({{ previous.new_users }})</td></tr>
<tr><td>Active coaches</td><td><strong>{{ this.active_coaches }}</strong> ({{ previous.active_coaches }})</td></tr>
</table>
<p>Revenue, net of refunds, per currency:</p>
<table style="border-collapse: collapse;">
<tr><th align="left">Currency</th><th align="left">Gross</th><th align="left">Platform</th></tr>
{% for m in money %}<tr><td>{{ m.currency }}</td><td><strong>{{ m.gross_minor | money(m.currency) }}</strong> ({{ m.prev_gross_minor | money(m.currency) }})</td><td><strong>{{ m.platform_minor | money(m.currency) }}</strong> ({{ m.prev_platform_minor | money(m.currency) }})</td></tr>
{% else %}<tr><td colspan="3">No payments in either week.</td></tr>{% endfor %}
</table>
<p>You get this report because you turned it on in your notification preferences.</p>
{% endblock %}"#,
    ),
    (
        "weekly_report.txt",
        "Hello {{ name }},\n\nThe week from {{ week_start }} to {{ week_end }} (your time), with the week before in brackets.\n\nBookings: {{ this.bookings }} (week before {{ previous.bookings }})\nCompleted: {{ this.completed }} (week before {{ previous.completed }})\nCancelled: {{ this.cancelled }} (week before {{ previous.cancelled }})\nNew users: {{ this.new_users }} (week before {{ previous.new_users }})\nActive coaches: {{ this.active_coaches }} (week before {{ previous.active_coaches }})\n\nRevenue, net of refunds:\n{% for m in money %}{{ m.currency }}: gross {{ m.gross_minor | money(m.currency) }} (week before {{ m.prev_gross_minor | money(m.currency) }}), platform {{ m.platform_minor | money(m.currency) }} (week before {{ m.prev_platform_minor | money(m.currency) }})\n{% else %}No payments in either week.\n{% endfor %}\nYou get this report because you turned it on in your notification preferences.\n",
    ),
];
