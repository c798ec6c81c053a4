using System.Data;
using System.Data.Common;

namespace SmpRobot.Controller.Storage;

/// <summary>A person or program that may call the controller: a name, a role, and the SHA-256 of its access token.</summary>
/// <param name="Name">Unique among users.</param>
/// <param name="Role">"observer", "operator", "engineer" or "admin".</param>
/// <param name="TokenSha256">Lower-case hex SHA-256 of the token (the token itself is never stored).</param>
/// <param name="CreatedAt">UTC.</param>
/// <param name="CreatedBy">Who added it (a user, or "smp-controller user add" on the chair).</param>
/// <param name="RevokedAt">UTC, or null while the token is accepted.</param>
public sealed record UserRecord(string Name, string Role, string TokenSha256, DateTimeOffset CreatedAt, string CreatedBy, DateTimeOffset? RevokedAt);

/// <summary>One call that changed (or tried to change) something, as the audit log keeps it.</summary>
/// <param name="Id">Increasing.</param>
/// <param name="At">UTC.</param>
/// <param name="Identity">The authenticated user, or "insecure-loopback" on a development controller.</param>
/// <param name="Role">The user's role then.</param>
/// <param name="Rpc">"/smprobot.v1.SessionService/Start".</param>
/// <param name="SessionId">The session the call named, if any.</param>
/// <param name="Arguments">The request as JSON, bounded (large fields are summarised by their length).</param>
/// <param name="Result">"OK", or the status code and its message.</param>
public sealed record CallAuditRecord(long Id, DateTimeOffset At, string Identity, string Role, string Rpc, string? SessionId, string Arguments, string Result);

public sealed partial class LedgerStore
{
    /// <summary>Schema version 6: users with hashed access tokens, and the append-only log of state-changing calls.</summary>
    private void MigrateToVersion6(DbTransaction tx)
    {
        Ddl(tx, """
            CREATE TABLE users (
                name TEXT PRIMARY KEY,
                role TEXT NOT NULL CHECK (role IN ('observer', 'operator', 'engineer', 'admin')),
                token_sha256 TEXT NOT NULL UNIQUE,
                created_at INTEGER NOT NULL,
                created_by TEXT NOT NULL,
                revoked_at INTEGER NULL);
            CREATE TABLE call_audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at INTEGER NOT NULL,
                identity TEXT NOT NULL,
                role TEXT NOT NULL,
                rpc TEXT NOT NULL,
                session_id TEXT NULL,
                arguments TEXT NOT NULL,
                result TEXT NOT NULL);
            CREATE INDEX call_audit_by_session ON call_audit (session_id, id);
            """);
        Execute(tx, _pg
            ? """
              CREATE FUNCTION smp_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
              CREATE TRIGGER call_audit_no_update BEFORE UPDATE ON call_audit FOR EACH ROW EXECUTE FUNCTION smp_append_only();
              CREATE TRIGGER call_audit_no_delete BEFORE DELETE ON call_audit FOR EACH ROW EXECUTE FUNCTION smp_append_only();
              CREATE TRIGGER call_audit_no_truncate BEFORE TRUNCATE ON call_audit FOR EACH STATEMENT EXECUTE FUNCTION smp_append_only();
              -- PostgreSQL has no data_version: a counter the users' changes bump, whoever makes them (DataVersion).
              CREATE TABLE users_version (v BIGINT NOT NULL);
              INSERT INTO users_version (v) VALUES (0);
              CREATE FUNCTION smp_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN UPDATE users_version SET v = v + 1; RETURN NULL; END $$;
              CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users FOR EACH STATEMENT EXECUTE FUNCTION smp_users_changed();
              """
            : """
              CREATE TRIGGER call_audit_no_update BEFORE UPDATE ON call_audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
              CREATE TRIGGER call_audit_no_delete BEFORE DELETE ON call_audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
              """);
    }

    /// <summary>
    /// Adds user <paramref name="name"/> with <paramref name="role"/> and the hash of its new token; a revoked user of
    /// that name gets the new token and role. Throws <see cref="InvalidOperationException"/> when an active user has
    /// the name.
    /// </summary>
    public UserRecord AddUser(string name, string role, string tokenSha256, string createdBy)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(role);
        ArgumentException.ThrowIfNullOrWhiteSpace(tokenSha256);
        ArgumentNullException.ThrowIfNull(createdBy);
        return Guarded(() =>
        {
            var now = _time.GetUtcNow();
            using var tx = Begin();
            // 1: an active user of that name, 0: a revoked one, null: none.
            var active = Scalar<long?>(tx, "SELECT CASE WHEN revoked_at IS NULL THEN 1 ELSE 0 END FROM users WHERE name = @n", ("@n", name));
            if (active == 1) throw new InvalidOperationException($"user '{name}' exists: revoke it first to give it a new token");
            var exists = active is not null;
            Execute(tx, exists
                ? "UPDATE users SET role = @r, token_sha256 = @h, created_at = @at, created_by = @by, revoked_at = NULL WHERE name = @n"
                : "INSERT INTO users (name, role, token_sha256, created_at, created_by) VALUES (@n, @r, @h, @at, @by)",
                ("@n", name), ("@r", role), ("@h", tokenSha256), ("@at", now.UtcTicks), ("@by", createdBy));
            tx.Commit();
            return new UserRecord(name, role, tokenSha256, now, createdBy, null);
        });
    }

    /// <summary>Revokes <paramref name="name"/>'s token; false when there is no such active user.</summary>
    public bool RevokeUser(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Guarded(() =>
        {
            return Execute(null, "UPDATE users SET revoked_at = @at WHERE name = @n AND revoked_at IS NULL", ("@n", name), ("@at", _time.GetUtcNow().UtcTicks)) == 1;
        });
    }

    /// <summary>Every user, active and revoked, by name.</summary>
    public IReadOnlyList<UserRecord> ListUsers()
    {
        return Guarded(() =>
        {
            using var cmd = Command(null, "SELECT name, role, token_sha256, created_at, created_by, revoked_at FROM users ORDER BY name");
            using var r = cmd.ExecuteReader();
            var users = new List<UserRecord>();
            while (r.Read())
            {
                users.Add(new UserRecord(r.GetString(0), r.GetString(1), r.GetString(2), FromTicks(r.GetInt64(3)), r.GetString(4), r.IsDBNull(5) ? null : FromTicks(r.GetInt64(5))));
            }
            return users;
        });
    }

    /// <summary>
    /// A number that changes when another connection changed the users: on SQLite the connection's data_version (any
    /// commit by another connection to the file: <c>smp-controller user add</c> on the chair); on PostgreSQL a counter
    /// that a trigger bumps on every change of the users table, by any chair or process. The user directory polls it.
    /// </summary>
    public long DataVersion()
    {
        return Guarded(() =>
        {
            return Scalar<long>(null, _pg ? "SELECT v FROM users_version" : "PRAGMA data_version");
        });
    }

    /// <summary>Appends one call to the audit log (durable when this returns).</summary>
    public void AppendCallAudit(DateTimeOffset at, string identity, string role, string rpc, string? sessionId, string arguments, string result)
    {
        Guarded(() =>
        {
            Execute(null, "INSERT INTO call_audit (at, identity, role, rpc, session_id, arguments, result) VALUES (@at, @i, @r, @rpc, @s, @a, @res)",
                ("@at", at.UtcTicks), ("@i", identity), ("@r", role), ("@rpc", rpc), ("@s", sessionId), ("@a", arguments), ("@res", result));
        });
    }

    /// <summary>The audit log, oldest first: since <paramref name="since"/> (inclusive) and of <paramref name="sessionId"/> when given, at most <paramref name="limit"/> entries (the newest).</summary>
    public IReadOnlyList<CallAuditRecord> ListCallAudit(DateTimeOffset? since, string? sessionId, int limit)
    {
        return Guarded(() =>
        {
            using var cmd = Command(null, """
                SELECT id, at, identity, role, rpc, session_id, arguments, result FROM (
                    SELECT * FROM call_audit WHERE (@since IS NULL OR at >= @since) AND (@s IS NULL OR session_id = @s) ORDER BY id DESC LIMIT @limit) AS newest
                ORDER BY id
                """, ("@since", since?.UtcTicks), ("@s", sessionId), ("@limit", limit));
            // Typed, so that PostgreSQL knows what a null one is ("@since IS NULL" alone cannot tell it).
            cmd.Parameters["@since"].DbType = DbType.Int64;
            cmd.Parameters["@s"].DbType = DbType.String;
            using var r = cmd.ExecuteReader();
            var entries = new List<CallAuditRecord>();
            while (r.Read())
            {
                entries.Add(new CallAuditRecord(r.GetInt64(0), FromTicks(r.GetInt64(1)), r.GetString(2), r.GetString(3), r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5), r.GetString(6), r.GetString(7)));
            }
            return entries;
        });
    }
}
