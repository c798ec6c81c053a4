using System.Data;
using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Npgsql;

namespace SmpRobot.Controller.Storage;

/// <summary>
/// What differs between the two backends, in one place: the connection's life (PostgreSQL's is reopened after a
/// failure), the isolation of transactions, the DDL types, and what a failure means (unreachable or not).
/// Every public call runs through <see cref="Guarded{T}(Func{T})"/>: the store's lock, a live connection, the retry
/// of a PostgreSQL serialization failure, and <see cref="StoreUnavailableException"/> for an unreachable server.
/// SQL is written once, in the subset both accept: parameters as <c>@name</c>, <c>ON CONFLICT DO NOTHING</c>,
/// <c>IS NOT DISTINCT FROM</c>, subqueries with an alias; a table that SQLite gives an implicit rowid gets an explicit
/// <c>rowid</c> identity column on PostgreSQL, so "newest first" orders the same on both.
/// </summary>
public sealed partial class LedgerStore
{
    /// <summary>The advisory lock chairs take to create or migrate the schema one at a time.</summary>
    private const long SchemaLockKey = 0x534d_5052_4f42_4f54; // "SMPROBOT"

    /// <summary>A PostgreSQL connection idle this long is checked (one round trip) before it is used: a restarted server drops it.</summary>
    private const long IdleCheckAfterMs = 1000;

    private readonly StoreLocation _location = null!;
    private readonly bool _pg;
    private long _lastUsedMs;

    // Sessions this controller runs (PostgreSQL): it holds a session-level advisory lock on each, so no other chair
    // runs it at the same time nor recovers it as if its controller had died (RecoverAfterRestart).
    private readonly HashSet<string> _running = new(StringComparer.Ordinal);

    /// <summary>Where this store is (the file, or the PostgreSQL server and database; never a password).</summary>
    public StoreLocation Location => _location;

    /// <summary>
    /// Runs <paramref name="body"/> under the store's lock on a live connection. On PostgreSQL: a serialization failure
    /// (two chairs changed the same row at once) rolls back and runs it again; a server that cannot be reached throws
    /// <see cref="StoreUnavailableException"/> and the connection is dropped, so the next call connects anew (a broken
    /// connection is never reused, in or out of a transaction). <paramref name="body"/> must change this object's
    /// memory only after its commit, as it may run more than once.
    /// </summary>
    private T Guarded<T>(Func<T> body)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (UnreachableForTests?.Invoke() == true) throw new StoreUnavailableException(_location.Display, new TimeoutException("cut off by the test"));
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    Ready();
                    var result = body();
                    _lastUsedMs = Environment.TickCount64;
                    return result;
                }
                catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected && attempt < 5)
                {
                    // Another chair committed a change to a row this transaction changed: run it again on fresh data.
                }
                catch (Exception e) when (_pg && IsUnreachable(e))
                {
                    DropConnection();
                    throw new StoreUnavailableException(_location.Display, e);
                }
            }
        }
    }

    private void Guarded(Action body) => Guarded(() =>
    {
        body();
        return true;
    });

    /// <summary>
    /// A new id for a row of <paramref name="table"/> (one of the store's own table names, never input): "<paramref name="prefix"/>-",
    /// the UTC time of <paramref name="now"/> and a random suffix, drawn again until no row of the table has it.
    /// </summary>
    private string NewId(DbTransaction tx, string prefix, string table, DateTimeOffset now)
    {
        string id;
        do
        {
            id = prefix + "-" + now.UtcDateTime.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture) + "-" + RandomNumberGenerator.GetHexString(4, lowercase: true);
        }
        while (Scalar<long>(tx, $"SELECT COUNT(*) FROM {table} WHERE id = @id", ("@id", id)) > 0);
        return id;
    }

    /// <summary>A transaction for a mutating call. PostgreSQL: repeatable read, where SQLite's single writer made every transaction serial.</summary>
    private DbTransaction Begin() => _pg ? _connection.BeginTransaction(IsolationLevel.RepeatableRead) : _connection.BeginTransaction();

    /// <summary>
    /// A live connection (PostgreSQL): opened when there is none (the first call, or after a failure), and checked with
    /// one round trip when it has been idle, because a server that restarted meanwhile has closed it without a word.
    /// </summary>
    private void Ready()
    {
        if (!_pg) return;
        if (_connection.State == ConnectionState.Open)
        {
            if (Environment.TickCount64 - _lastUsedMs < IdleCheckAfterMs) return;
            try
            {
                Execute(null, "SELECT 1");
                return;
            }
            catch (Exception e) when (IsUnreachable(e))
            {
                // Closed while idle: nothing of the coming call was sent; connect again below.
            }
        }
        DropConnection();
        _connection.Open();
        // A new connection holds none of the locks the old one held: take back those of the sessions this controller runs.
        foreach (var id in _running)
        {
            if (Scalar<bool>(null, "SELECT pg_try_advisory_lock(hashtextextended(@id, 0))", ("@id", id)) is false)
            {
                throw new InvalidOperationException($"session {id} was taken over by another controller while the record store was unreachable");
            }
        }
    }

    private void DropConnection()
    {
        var old = _connection;
        _connection = new NpgsqlConnection(_location.ConnectionString);
        old.Dispose();
    }

    /// <summary>
    /// The server is not there or stopped answering: a failure to connect, read or write (Npgsql wraps those in a plain
    /// NpgsqlException), a timeout, or the server's own "shutting down", "starting up" or connection errors (class 08,
    /// 57P01-57P03). A statement the server refused for what it says (a constraint, a trigger) is not one.
    /// </summary>
    internal static bool IsUnreachable(Exception e) => e switch
    {
        PostgresException p => p.SqlState.StartsWith("08", StringComparison.Ordinal) || p.SqlState is "57P01" or "57P02" or "57P03",
        NpgsqlException => true,
        TimeoutException => true,
        InvalidOperationException when e.Source == "Npgsql" => true, // a command on a connection that broke under it
        _ => false,
    };

    /// <summary>
    /// The insert broke the UNIQUE (treatment_id, number) constraint of treatment_sessions: another chair made session
    /// k of the treatment first. PostgreSQL: unique violation 23505 on that constraint (the name PostgreSQL gave it);
    /// SQLite: SQLITE_CONSTRAINT_UNIQUE (19/2067) on those columns.
    /// </summary>
    internal static bool IsTreatmentSessionTaken(DbException e) => e switch
    {
        PostgresException p => p.SqlState == PostgresErrorCodes.UniqueViolation && p.TableName == "treatment_sessions" && p.ConstraintName == "treatment_sessions_treatment_id_number_key",
        Microsoft.Data.Sqlite.SqliteException s => s.SqliteErrorCode == 19 && s.SqliteExtendedErrorCode == 2067
            && s.Message.Contains("treatment_sessions.treatment_id, treatment_sessions.number", StringComparison.Ordinal),
        _ => false,
    };

    /// <summary>Runs schema DDL written in SQLite's words, in PostgreSQL's when that is the backend.</summary>
    private void Ddl(DbTransaction tx, string sqliteDdl) => Execute(tx, _pg ? ToPostgres(sqliteDdl) : sqliteDdl);

    /// <summary>
    /// SQLite DDL as PostgreSQL DDL: INTEGER → BIGINT (SQLite's integers are 64-bit), REAL → DOUBLE PRECISION,
    /// BLOB → BYTEA, <c>INTEGER PRIMARY KEY AUTOINCREMENT</c> → an identity column, no <c>WITHOUT ROWID</c>, and an
    /// explicit <c>rowid</c> identity column on each table that SQLite gives an implicit one (queries order by it).
    /// </summary>
    internal static string ToPostgres(string sqliteDdl)
    {
        var sql = new StringBuilder();
        var at = 0;
        foreach (Match table in CreateTable().Matches(sqliteDdl))
        {
            // The table's body: from its opening parenthesis to the matching one, then up to the statement's end.
            var open = table.Index + table.Length - 1;
            var depth = 0;
            var close = open;
            for (; close < sqliteDdl.Length; close++)
            {
                if (sqliteDdl[close] == '(') depth++;
                else if (sqliteDdl[close] == ')' && --depth == 0) break;
            }
            var end = sqliteDdl.IndexOf(';', close);
            var tail = end < 0 ? sqliteDdl[close..] : sqliteDdl[close..end];
            var body = sqliteDdl[(open + 1)..close];
            var hasRowid = !tail.Contains("WITHOUT ROWID", StringComparison.Ordinal) && !body.Contains("INTEGER PRIMARY KEY", StringComparison.Ordinal);
            sql.Append(sqliteDdl, at, open + 1 - at);
            if (hasRowid) sql.Append("rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, ");
            at = open + 1;
        }
        sql.Append(sqliteDdl, at, sqliteDdl.Length - at);
        var text = sql.ToString()
            .Replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", StringComparison.Ordinal)
            .Replace(" WITHOUT ROWID", "", StringComparison.Ordinal);
        text = Integer().Replace(text, "BIGINT");
        text = Real().Replace(text, "DOUBLE PRECISION");
        return Blob().Replace(text, "BYTEA");
    }

    /// <summary>A typed parameter of a prepared command (PostgreSQL prepares with the types known).</summary>
    private static DbParameter AddParameter(DbCommand cmd, string name, DbType type)
    {
        var p = cmd.CreateParameter();
        p.ParameterName = name;
        p.DbType = type;
        cmd.Parameters.Add(p);
        return p;
    }

    /// <summary>
    /// PostgreSQL: this controller runs <paramref name="sessionId"/> from now on (phase Running or Pausing): it takes the
    /// session's advisory lock, or refuses when another chair's controller runs it. True when this call took the lock
    /// (false on SQLite, and when this controller already ran the session): only then may the caller's failure give it
    /// back (<see cref="UnclaimRun"/>).
    /// </summary>
    private bool ClaimRun(string sessionId)
    {
        if (!_pg || _running.Contains(sessionId)) return false;
        if (!Scalar<bool>(null, "SELECT pg_try_advisory_lock(hashtextextended(@id, 0))", ("@id", sessionId)))
        {
            throw new InvalidOperationException($"session {sessionId} is being run by another controller on this record store");
        }
        _running.Add(sessionId);
        return true;
    }

    /// <summary>
    /// PostgreSQL: gives back a claim this controller just took (<see cref="ClaimRun"/> returned true) for a change that
    /// then failed, so no lock is left behind for a run that never began. Never throws: a connection that broke under
    /// the failure has taken its locks with it, and a connection that cannot give it back is dropped (its locks go with
    /// it; those of the sessions this controller still runs are taken back by the next call, <see cref="Ready"/>). The
    /// session is out of <see cref="_running"/> either way, so no reconnect takes it back.
    /// </summary>
    private void UnclaimRun(string sessionId)
    {
        if (!_running.Remove(sessionId)) return;
        _tallies.Remove(sessionId);
        if (_connection.State != ConnectionState.Open) return;
        try
        {
            Execute(null, "SELECT pg_advisory_unlock(hashtextextended(@id, 0))", ("@id", sessionId));
        }
#pragma warning disable CA1031 // the change's own failure is what the caller must see; the lock is given back by dropping its connection instead
        catch (Exception)
#pragma warning restore CA1031
        {
            DropConnection();
        }
    }

    /// <summary>PostgreSQL: this controller no longer runs <paramref name="sessionId"/>; its counts are no longer kept in memory.</summary>
    private void ReleaseRun(string sessionId)
    {
        if (!_pg) return;
        _tallies.Remove(sessionId);
        if (!_running.Remove(sessionId)) return;
        Execute(null, "SELECT pg_advisory_unlock(hashtextextended(@id, 0))", ("@id", sessionId));
    }

    [GeneratedRegex(@"CREATE TABLE (?:IF NOT EXISTS )?\w+ \(")]
    private static partial Regex CreateTable();

    [GeneratedRegex(@"\bINTEGER\b")]
    private static partial Regex Integer();

    [GeneratedRegex(@"\bREAL\b")]
    private static partial Regex Real();

    [GeneratedRegex(@"\bBLOB\b")]
    private static partial Regex Blob();
}
