//! Typed keys: one constant carries a key's name, the table it belongs to and the type of its
//! value, so that reading a key is checked by the compiler three ways: the constant exists
//! (a typo does not compile), it belongs to the table being read (`server::LISTEN` cannot be
//! read from a target), and the value comes back as the declared type.
//!
//! Main types: [`TypedKey`], [`Section`] (a table and its key list), [`ValueType`] and the
//! value types in [`ty`]. What it is not: the declarations themselves (`monitor`, `notify`,
//! `lb`), or reading values (`fields` turns a [`ValueType`] into the value read).

use std::fmt;
use std::marker::PhantomData;

use super::Key;

/// A table of the configuration file, as a type: `target::Table`, `server::Table`…
pub trait Section: 'static {
    /// Every key the table accepts (of every kind, for targets), as declared.
    const KEYS: &'static [Key];
    /// Keys of another table that this one accepts too: `[[pool]]` takes `[defaults]`' keys.
    const INCLUDES: &'static [Key] = &[];
    /// Whether every value in the table is read on its own, with no table nested in it
    /// that has keys of its own (`flap`, `recover`…): such a table needs no reader but
    /// `value`'s.
    const PLAIN: bool = plain(Self::KEYS) && plain(Self::INCLUDES);

    /// The key of this table named `name`, for names that only exist at run time: the
    /// core's validation errors name the field they blame by string. Code names keys by
    /// their constants.
    fn named(name: &str) -> Option<TypedKey<Self, Untyped>>
    where
        Self: Sized,
    {
        Self::KEYS
            .iter()
            .chain(Self::INCLUDES)
            .find(|key| key.name == name)
            .map(|key| TypedKey::new(key.name))
    }
}

const fn plain(keys: &[Key]) -> bool {
    let mut i = 0;
    while i < keys.len() {
        if keys[i].ty.is_nested() {
            return false;
        }
        i += 1;
    }
    true
}

impl Ty {
    /// A table with keys of its own, read by `compound` or `recovery`.
    pub const fn is_nested(self) -> bool {
        matches!(self, Ty::Window | Ty::Flap | Ty::Detector | Ty::Recover)
    }
}

/// What a key's value is, as a type: says how the walker reads it ([`Ty`]); `fields` says
/// what Rust type it becomes.
pub trait ValueType: 'static {
    const TY: Ty;
}

/// A key of table `S` whose value is a `T`. Made only by `schema!` (the constructor is
/// private to `keys`), so every key named in code is one that was declared, in the table
/// it was declared in.
pub struct TypedKey<S, T> {
    name: &'static str,
    of: PhantomData<fn() -> (S, T)>,
}

/// A key whose value type is left out, for lists of keys of different types (the keys a
/// kind requires, the threshold keys): it can be asked whether and where it was written, not
/// read.
#[derive(Debug)]
pub enum Untyped {}

impl<S, T> TypedKey<S, T> {
    pub(super) const fn new(name: &'static str) -> Self {
        TypedKey {
            name,
            of: PhantomData,
        }
    }

    /// The key's name, as written in the file.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// The same key, without its value type.
    pub const fn untyped(self) -> TypedKey<S, Untyped> {
        TypedKey::new(self.name)
    }

    /// The field of this key in the table at `path`, for messages: `target[0] ("api").url`.
    pub fn field(self, path: &str) -> String {
        format!("{path}.{}", self.name)
    }
}

// By hand: derives would ask `S` and `T`, which are never values, to be `Clone` and `Debug`.
impl<S, T> Clone for TypedKey<S, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, T> Copy for TypedKey<S, T> {}

impl<S, T> PartialEq for TypedKey<S, T> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl<S, T> fmt::Debug for TypedKey<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TypedKey({})", self.name)
    }
}

/// Tables that hold every key of `[defaults]`, which they inherit: `[defaults]` itself,
/// targets (which declare each again, for the kinds they belong to) and pools (which
/// include them). `keys::tests` checks that targets declare them all, with the same types.
pub trait HoldsDefaults: Section {}

impl<T> TypedKey<super::defaults::Table, T> {
    /// The same key, in a table that inherits `[defaults]`.
    pub const fn within<S: HoldsDefaults>(self) -> TypedKey<S, T> {
        TypedKey::new(self.name)
    }
}

macro_rules! value_types {
    ($(#[$doc:meta])* pub enum Ty { $($(#[$variant_doc:meta])* $name:ident,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Ty {
            $($(#[$variant_doc])* $name,)*
        }

        /// The value types, one per `Ty`, named like it: the `T` of `TypedKey<_, T>`.
        pub mod ty {
            use super::{Ty, ValueType};

            $(
                #[doc = concat!("A key whose value is read as `Ty::", stringify!($name), "`.")]
                #[derive(Debug)]
                pub enum $name {}

                impl ValueType for $name {
                    const TY: Ty = Ty::$name;
                }
            )*
        }
    };
}

// One list makes both the walker's `Ty` and the value types of typed keys.
value_types! {
    /// The type of a key's value: how the walker reads and checks it on its own, before any
    /// other key is looked at.
    pub enum Ty {
        /// A non-empty string.
        Str,
        /// A bearer token: visible ASCII without spaces, at least 16 characters.
        Token,
        /// A non-empty path.
        Path,
        /// A humantime duration string: "30s", "1m 30s", "500ms".
        Duration,
        /// A whole number from 0 to 2^32 - 1.
        Count,
        /// A whole number of bytes.
        Bytes,
        /// true or false.
        Bool,
        /// A finite number, whole or not.
        Number,
        /// A list of non-empty strings.
        List,
        /// An IP address and port: "127.0.0.1:7070".
        SocketAddr,
        /// A target id: `[a-z0-9][a-z0-9_.-]{0,63}`.
        Id,
        /// A heartbeat's ping id: a UUID or a slug.
        PingId,
        /// An http:// or https:// URL.
        HttpUrl,
        PostgresUrl,
        RedisUrl,
        /// host:port.
        HostPort,
        /// Where a suspicion is confirmed: tcp://host:port, or an http:// or https:// URL.
        ConfirmUrl,
        /// A program and its arguments, as a list.
        Command,
        /// An HTTP method.
        Method,
        /// A table of header names to values.
        Headers,
        /// A status code, "200-299", or [200, 299].
        StatusRange,
        /// Any TOML value, kept as JSON.
        Json,
        /// A cron expression.
        Cron,
        /// An IANA time zone name.
        TimeZone,
        /// Hex-encoded key bytes, at least 16 of them.
        HexKey,
        /// "3 of 10" or { failures = 3, of_last = 10 }.
        Window,
        /// { transitions = 8, within = "10m" }, or false.
        Flap,
        /// "deadline", "phi", or a table with kind = "phi" and its tuning.
        Detector,
        /// The `[target.recover]` table: the keys of `recover` and `recover_http`, read by
        /// `recovery`.
        Recover,
    }
}
