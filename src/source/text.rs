//! Text from the database decoded without trusting its encoding. In a `SQL_ASCII` database any byte may sit in a
//! text column, and the monitor's session then asks for the bytes as they are (`client_encoding = SQL_ASCII`);
//! what is not UTF-8 shows as U+FFFD instead of failing the whole poll. Control characters are left for the
//! screen to defuse (`ui::text::clean`).

use sqlx::postgres::{PgConnection, PgHasArrayType, PgTypeInfo, PgValueRef, Postgres};
use sqlx::{Decode, Type};

use super::connect::SessionLimits;
use super::error::SourceError;

/// In a `SQL_ASCII` database, asks for text as stored: the server would otherwise refuse to send a row holding
/// a byte that is not UTF-8 ("invalid byte sequence"), failing the poll. Elsewhere the server guarantees UTF-8.
///
/// Behind a transaction-mode pooler a session setting would land on whichever backend the pooler picked, so
/// there the server's conversion stays on: a poll of a row holding such a byte fails with the server's message.
pub async fn accept_any_bytes(
    conn: &mut PgConnection,
    pooled: Option<SessionLimits>,
) -> Result<(), SourceError> {
    if pooled.is_some() {
        return Ok(());
    }
    let encoding: String = sqlx::query_scalar("SELECT current_setting('server_encoding')")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| SourceError::from_query(&e))?;
    if encoding == "SQL_ASCII" {
        sqlx::query("SELECT set_config('client_encoding', 'SQL_ASCII', false)")
            .execute(&mut *conn)
            .await
            .map_err(|e| SourceError::from_query(&e))?;
    }
    Ok(())
}

/// A text value decoded lossily.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lossy(pub String);

impl Type<Postgres> for Lossy {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <String as Type<Postgres>>::compatible(ty)
    }
}

impl PgHasArrayType for Lossy {
    fn array_type_info() -> PgTypeInfo {
        <String as PgHasArrayType>::array_type_info()
    }

    fn array_compatible(ty: &PgTypeInfo) -> bool {
        <String as PgHasArrayType>::array_compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for Lossy {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Self(
            String::from_utf8_lossy(value.as_bytes()?).into_owned(),
        ))
    }
}

/// The text of an optional lossy value.
pub fn text(value: Option<Lossy>) -> Option<String> {
    value.map(|v| v.0)
}
