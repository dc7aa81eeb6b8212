//! The monitor's alerting tables: `[notify]`, `[[channel]]`, `[[rule]]`, `[[maintenance]]`.
//!
//! Not here: which channel kind takes which key (`notify::channel`), or the other tables.

schema! {
    /// `[notify]`: delivery settings.
    notify (NOTIFY) {
        GROUP_WAIT: Duration = "group_wait";
        RETRY_MIN: Duration = "retry_min";
        RETRY_MAX: Duration = "retry_max";
        GROUP_INTERVAL: Duration = "group_interval";
        DASHBOARD_URL: HttpUrl = "dashboard_url";
    }

    /// `[[channel]]`: every kind's keys; `crate::notify` checks which kind takes which.
    channel (CHANNEL) {
        ID: Id = "id";
        KIND: Str = "kind";
        TIMEOUT: Duration = "timeout";
        MAX_ATTEMPTS: Count = "max_attempts";
        URL: HttpUrl = "url";
        SECRET: Str = "secret";
        HEADERS: Headers = "headers";
        SMTP: HostPort = "smtp";
        TLS: Str = "tls";
        USERNAME: Str = "username";
        PASSWORD: Str = "password";
        FROM: Str = "from";
        TO: List = "to";
        COMMAND: Command = "command";
    }

    /// `[[rule]]`.
    rule (RULE) {
        TARGETS: List = "targets";
        GROUPS: List = "groups";
        ON: List = "on";
        CHANNELS: List = "channels";
        REPEAT: Duration = "repeat";
        REPEAT_MAX: Duration = "repeat_max";
        GROUP_BY: List = "group_by";
        GROUP_WAIT: Duration = "group_wait";
        GROUP_INTERVAL: Duration = "group_interval";
    }

    /// `[[maintenance]]`: one-off (from, until) or recurring (schedule, duration, timezone).
    maintenance (MAINTENANCE) {
        ID: Str = "id";
        TARGETS: List = "targets";
        GROUPS: List = "groups";
        FROM: Str = "from";
        UNTIL: Str = "until";
        SCHEDULE: Cron = "schedule";
        TIMEZONE: TimeZone = "timezone";
        DURATION: Duration = "duration";
    }
}
