"""The deck's own database role: ``spacetime_deck`` may log in and SELECT Space Time's tables, nothing else.

The deck's sessions also start read-only (``default_transaction_read_only``), but any statement can switch that
off; the role is what makes writing impossible. It is ``NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
NOBYPASSRLS``, a member of no role, has CONNECT on the database, USAGE on the schema of our tables and SELECT on
exactly the tables our migrations create (never ``schema_migrations``, never DBOS's ``dbos`` schema, nothing else),
and carries ``statement_timeout`` and ``default_transaction_read_only`` as its own settings.

New tables are granted by re-granting after every migration run (``grant_reads``, called by ``migrate`` under its
lock), not by ``ALTER DEFAULT PRIVILEGES``: default privileges would also cover every other table the migrating
user ever creates in that schema, and only for tables created by that one user.

Roles belong to the whole server, not to one database: one ``spacetime_deck`` serves every Space Time database
on a server, with grants in each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from spacetime.errors import StoreConfigError

DECK_ROLE = "spacetime_deck"
DECK_SETTINGS = {"statement_timeout": "15s", "default_transaction_read_only": "on"}
"""The role's own settings (``ALTER ROLE … SET``): the deck's connections also ask for both in libpq ``options``."""

_WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
_RACES = (pg_errors.UniqueViolation, pg_errors.DuplicateObject)


@dataclass(frozen=True, slots=True)
class Granted:
    role: str
    tables: int
    """How many of our tables it may read now (0 before the first migration)."""
    created: bool
    warnings: tuple[str, ...] = ()
    """What the role could still do that we cannot take away (e.g. PUBLIC's CREATE on an old ``public`` schema)."""


def role_url(url: str, role: str, password: str | None = None) -> str:
    """``url`` (a ``postgresql://`` URL) with its user and password replaced: same server, database and options."""
    parts = urlsplit(url)
    hostport = parts.netloc.rpartition("@")[2]
    auth = quote(role, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("user", "password")]
    query = urlencode(kept, safe="/")
    return parts._replace(netloc=f"{auth}@{hostport}", query=query).geturl()


def _one(conn: psycopg.Connection, query: sql.Composed | str, params: Sequence[object] = ()) -> tuple[object, ...]:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return tuple(row)


def _existing_tables(conn: psycopg.Connection, tables: Sequence[str]) -> list[tuple[str, str]]:
    """(schema, name) of those of ``tables`` that exist (resolved like the engine resolves them: search_path)."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM unnest(%s::text[]) AS t(name) "
        "JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.name)) JOIN pg_namespace n ON n.oid = c.relnamespace "
        "ORDER BY c.relname",
        (list(tables),),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def _grant(conn: psycopg.Connection, statement: sql.Composed, held: str, params: Sequence[object],
           what: str) -> None:
    """Run one GRANT/REVOKE (``what`` it does); if we may not, accept it when ``held`` says the role is as wanted
    already, else one line naming what is missing."""
    try:
        with conn.transaction():
            conn.execute(statement)
    except pg_errors.InsufficientPrivilege as exc:
        if _one(conn, held, params)[0]:
            return
        user = _one(conn, "SELECT current_user")[0]
        raise StoreConfigError(
            f"{user} may not {what} ({str(exc).splitlines()[0]}): run `spacetime db grant-deck-role` as the "
            "owner of the database and its tables, or as a superuser"
        ) from None


def _table_state(conn: psycopg.Connection, role: str, found: Sequence[tuple[str, str]]) -> list[tuple[bool, bool]]:
    """Per table of ``found``: (``role`` holds SELECT by a grant of its own, ``role`` may write it somehow)."""
    rows = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = r.oid AND a.privilege_type = 'SELECT'), "
        "has_table_privilege(r.oid, c.oid, %s) "
        "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS t(nsp, rel, i) "
        "JOIN pg_namespace n ON n.nspname = t.nsp JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.rel "
        "CROSS JOIN (SELECT oid FROM pg_roles WHERE rolname = %s) r ORDER BY t.i",
        (", ".join(_WRITES), [s for s, _ in found], [n for _, n in found], role),
    ).fetchall()
    return [(bool(r[0]), bool(r[1])) for r in rows]


def _schema_state(conn: psycopg.Connection, role: str, schema: str) -> tuple[bool, bool]:
    """(``role`` holds USAGE on ``schema`` by a grant of its own, ``role`` may CREATE in it somehow)."""
    row = _one(conn,
               "SELECT EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a WHERE a.grantee = r.oid "
               "AND a.privilege_type = 'USAGE'), has_schema_privilege(r.oid, n.oid, 'CREATE') "
               "FROM pg_namespace n, pg_roles r WHERE n.nspname = %s AND r.rolname = %s", (schema, role))
    return bool(row[0]), bool(row[1])


def grant_reads(conn: psycopg.Connection, tables: Sequence[str], role: str = DECK_ROLE) -> int:
    """USAGE on the schema(s) of our tables and SELECT on each of them that exists, if ``role`` exists (only what is
    missing: a migration run that adds nothing writes no catalog row). Returns how many tables it may read. Quietly
    grants nothing where we may not (``spacetime deck`` then says what to run)."""
    if not _role_exists(conn, role):
        return 0
    found = _existing_tables(conn, tables)
    ident = sql.Identifier(role)
    try:
        with conn.transaction():
            for schema in sorted({s for s, _ in found}):
                if not _schema_state(conn, role, schema)[0]:
                    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), ident))
            for (schema, name), (selects, _) in zip(found, _table_state(conn, role, found), strict=True):
                if not selects:
                    conn.execute(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(sql.Identifier(schema, name), ident))
    except pg_errors.InsufficientPrivilege:
        return 0
    return len(found)


def check_may_create_roles(conn: psycopg.Connection) -> None:
    user, superuser, createrole = _one(conn, "SELECT rolname, rolsuper, rolcreaterole FROM pg_roles "
                                             "WHERE rolname = current_user")
    if not (superuser or createrole):
        raise StoreConfigError(
            f"the database user {user} lacks the CREATEROLE privilege, which creating the deck's role needs: run "
            "`spacetime db grant-deck-role` with --database-url of a user that has CREATEROLE (or a superuser)"
        )


def ensure_deck_role(conn: psycopg.Connection, tables: Sequence[str], *, password: str | None = None,
                     role: str = DECK_ROLE) -> Granted:
    """Create or update ``role`` (attributes, settings, grants) inside the caller's transaction; idempotent.

    ``password`` set: the role's password becomes it (sent as a SCRAM/MD5 hash, never in clear). ``None``: an
    existing password is kept (a new role has none: it logs in only where the server trusts the connection)."""
    check_may_create_roles(conn)
    ident = sql.Identifier(role)
    created = False
    if not _role_exists(conn, role):
        try:
            with conn.transaction():  # two servers' worth of processes may race here: roles are server-wide
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                                     "NOBYPASSRLS").format(ident))
                created = True
        except _RACES:
            pass
    attrs = _one(conn, "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin "
                       "FROM pg_roles WHERE rolname = %s", (role,))
    wanted = (False, False, False, False, False, True)
    names = ("SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS", "LOGIN")
    changes = [("" if want else "NO") + name for name, have, want in zip(names, attrs, wanted, strict=True)
               if bool(have) != want]
    try:
        if changes:
            conn.execute(sql.SQL("ALTER ROLE {} " + " ".join(changes)).format(ident))
        if password is not None:
            hashed = conn.pgconn.encrypt_password(password.encode(), role.encode()).decode()
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(hashed)))
        current = _one(conn, "SELECT coalesce((SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r "
                             "ON r.oid = s.setrole WHERE r.rolname = %s AND s.setdatabase = 0), '{}')", (role,))[0]
        for name, value in DECK_SETTINGS.items():
            if f"{name}={value}" not in (current or []):  # type: ignore[operator]
                conn.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(ident, sql.Identifier(name),
                                                                         sql.Literal(value)))
        for (member_of,) in conn.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s", (role,)
        ).fetchall():
            conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(member_of), ident))
    except pg_errors.InsufficientPrivilege as exc:
        user = _one(conn, "SELECT current_user")[0]
        raise StoreConfigError(
            f"{user} may not change the role {role} ({str(exc).splitlines()[0]}): run `spacetime db grant-deck-role` "
            "as the user that created it, or as a superuser"
        ) from None

    has_connect = _one(conn, "SELECT EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a, pg_roles r "
                             "WHERE d.datname = current_database() AND r.rolname = %s AND a.grantee = r.oid "
                             "AND a.privilege_type = 'CONNECT')", (role,))[0]
    if not has_connect:
        _grant(conn, sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(str(_one(conn, "SELECT current_database()")[0])), ident),
            "SELECT has_database_privilege(%s, current_database(), 'CONNECT')", (role,),
            "grant CONNECT on the database")
    found = _existing_tables(conn, tables)
    warnings: list[str] = []
    for schema in sorted({s for s, _ in found}):
        usage, create = _schema_state(conn, role, schema)
        if create:
            _grant(conn, sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(sql.Identifier(schema), ident),
                   "SELECT false", (), f"revoke CREATE on the schema {schema}")
            if _schema_state(conn, role, schema)[1]:
                warnings.append(
                    f"every role may create objects in the schema {schema} (the default before PostgreSQL 15), "
                    f"{role} too: have its owner run `REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC`"
                )
        if not usage:
            _grant(conn, sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), ident),
                   "SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, schema),
                   f"grant USAGE on the schema {schema}")
    for (schema, name), (selects, writes) in zip(found, _table_state(conn, role, found), strict=True):
        table = sql.Identifier(schema, name)
        if writes:
            _grant(conn, sql.SQL("REVOKE {} ON TABLE {} FROM {}").format(
                sql.SQL(", ").join(map(sql.SQL, _WRITES)), table, ident),
                "SELECT false", (), f"revoke writes on the table {name}")
        if not selects:
            _grant(conn, sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(table, ident),
                   "SELECT has_table_privilege(%s, %s, 'SELECT')", (role, f"{schema}.{name}"),
                   f"grant SELECT on the table {name}")
    return Granted(role, len(found), created, tuple(warnings))


def deck_role_problem(conn: psycopg.Connection, tables: Sequence[str]) -> str | None:
    """Why the role of ``conn`` (the deck's connection) must not serve the deck, or ``None`` when it is fit: not a
    superuser, a member of no role, writes none of our tables, reads every one of them."""
    user, superuser = _one(conn, "SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user")
    if superuser:
        return f"{user} is a superuser, which can write"
    member = conn.execute(
        "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = current_user ORDER BY 1 LIMIT 1"
    ).fetchone()
    if member is not None:
        return f"{user} is a member of {member[0]}, which SET ROLE could use to write"
    found = _existing_tables(conn, tables)
    if not found:
        return "there are no Space Time tables in that database (`spacetime db migrate` creates them)"
    writes = ", ".join(_WRITES)
    for schema, name in found:
        qualified = f"{schema}.{name}"
        if _one(conn, "SELECT has_table_privilege(%s, %s)", (qualified, writes))[0]:
            return f"{user} can write the table {name}"
        if not _one(conn, "SELECT has_table_privilege(%s, 'SELECT')", (qualified,))[0]:
            return f"{user} may not read the table {name}"
    return None
