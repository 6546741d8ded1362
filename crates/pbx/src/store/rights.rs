//! Which `[[calling_rights]]` an extension has (`user add … --rights`, `user set … --rights`):
//! a name in the users table, `NULL` for the default rights.

use rusqlite::{params, Connection, OptionalExtension};

use super::{Extension, Store, StoreError};

/// Adds the `rights` column to a users table made before calling rights.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('users') WHERE name = 'rights'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE users ADD COLUMN rights TEXT")?;
    }
    Ok(())
}

impl Store {
    /// The calling rights name given to `ext`; `None`: the default rights (or no such user).
    pub fn user_rights(&self, ext: &Extension) -> Result<Option<String>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT rights FROM users WHERE extension = ?1")?;
        Ok(st
            .query_row(params![ext.0], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// Gives `ext` the rights named `rights` (`None`: back to the default rights).
    pub fn set_user_rights(&self, ext: &Extension, rights: Option<&str>) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE users SET rights = ?2 WHERE extension = ?1",
            params![ext.0, rights],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchUser(ext.0.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_are_kept_per_extension_and_an_old_users_table_gains_the_column() {
        let dir = std::env::temp_dir().join(format!("kentongan-pbx-rights-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pbx.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE users (extension TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',
                 ha1_md5 TEXT NOT NULL, ha1_sha256 TEXT NOT NULL, realm TEXT NOT NULL);
                 INSERT INTO users VALUES ('201', 'Front desk', 'x', 'y', 'pbx.local');",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let ext = Extension("201".into());
        assert_eq!(store.user_rights(&ext).unwrap(), None);
        store.set_user_rights(&ext, Some("direksi")).unwrap();
        assert_eq!(store.user_rights(&ext).unwrap().as_deref(), Some("direksi"));
        store.set_user_rights(&ext, None).unwrap();
        assert_eq!(store.user_rights(&ext).unwrap(), None);
        assert!(matches!(
            store.set_user_rights(&Extension("999".into()), Some("x")),
            Err(StoreError::NoSuchUser(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
