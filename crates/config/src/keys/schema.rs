//! `schema!`, the one way to declare a table of the configuration file.
//!
//! ```text
//! schema! {
//!     /// `[[target]]`.
//!     target (TARGET) {
//!         ID: Id = "id";                           // every kind
//!         TIMEOUT: Duration = "timeout" for ACTIVE;
//!         URL: HttpUrl = "url" for HTTP | VITALS;
//!     }
//! }
//! ```
//!
//! makes a module `target` with a type `Table` (the table, a [`Section`] whose key list is
//! the declaration), one [`TypedKey`] constant per line (`target::TIMEOUT:
//! TypedKey<target::Table, ty::Duration>`), and `TARGET`, the key list. Left out, `for`
//! means every kind. `includes LIST` adds another table's keys to the list the walker checks
//! (`[[pool]]` takes `[defaults]`' keys).
//!
//! [`Section`]: super::Section
//! [`TypedKey`]: super::TypedKey

macro_rules! schema {
    (@kinds) => { $crate::keys::ANY };
    (@kinds $kinds:expr) => { $kinds };
    ($(
        $(#[$doc:meta])*
        $module:ident ($list:ident) $(includes $includes:path)? {
            $( $(#[$key_doc:meta])* $key:ident: $ty:ident = $name:literal $(for $kinds:expr)?; )*
        }
    )*) => {$(
        $(#[$doc])*
        pub mod $module {
            #[allow(unused_imports, reason = "the kind masks, when a table uses them")]
            use super::*;

            /// The table, as a type: the `S` of the `TypedKey<S, _>` constants below.
            #[derive(Debug)]
            pub enum Table {}

            impl $crate::keys::Section for Table {
                const KEYS: &'static [$crate::keys::Key] = &[$(
                    $crate::keys::Key {
                        name: $name,
                        ty: <$crate::keys::ty::$ty as $crate::keys::ValueType>::TY,
                        kinds: $crate::keys::Kinds::of(schema!(@kinds $($kinds)?)),
                    },
                )*];
                $(const INCLUDES: &'static [$crate::keys::Key] = $includes;)?
            }

            $(
                $(#[$key_doc])*
                pub const $key: $crate::keys::TypedKey<Table, $crate::keys::ty::$ty> =
                    $crate::keys::TypedKey::new($name);
            )*
        }

        $(#[$doc])*
        #[allow(dead_code, reason = "the tests go through every list; the walker reads `Table::KEYS`")]
        pub const $list: &[$crate::keys::Key] =
            <$module::Table as $crate::keys::Section>::KEYS;
    )*};
}
