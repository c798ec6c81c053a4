using System.Data.Common;
using System.Security.Cryptography;
using System.Text;

namespace SmpRobot.Controller.Storage;

public sealed partial class LedgerStore
{
    /// <summary>
    /// This store's controller, as its audit rows and the sessions it runs name it: the host's name and a random suffix
    /// drawn when the store opens ("chair-3/5c0e1a9f"). Chairs that share a PostgreSQL store write to one audit table;
    /// this is what tells their rows apart. A controller that restarts is a new one: a session it resumes is recorded
    /// as run by it too (<see cref="UpdateSession"/>).
    /// </summary>
    public string ControllerId { get; } = Environment.MachineName + "/" + RandomNumberGenerator.GetHexString(8, lowercase: true);

    /// <summary>
    /// Schema version 8: every audit row names the controller that wrote it (rows written before say nothing: NULL), a
    /// session keeps which controllers ran it and from when, and machine-wide rows are indexed by kind and time, so a
    /// session's e-stops are selected by the store (<see cref="ReadMachineAuditWhileRunBy"/>), not found in memory
    /// among the newest rows of every chair.
    /// </summary>
    private void MigrateToVersion8(DbTransaction tx) => Ddl(tx, """
        ALTER TABLE audit ADD COLUMN controller TEXT NULL;
        CREATE INDEX audit_machine_by_kind ON audit (kind, at) WHERE session_id IS NULL;
        CREATE TABLE session_controllers (
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            controller TEXT NOT NULL,
            first_run_at INTEGER NOT NULL,
            PRIMARY KEY (session_id, controller)) WITHOUT ROWID;
        """);

    /// <summary>This controller runs session <paramref name="sessionId"/> (in <paramref name="tx"/>): kept once per controller, from its first run.</summary>
    private void RecordRunBy(DbTransaction tx, string sessionId, DateTimeOffset at) =>
        Execute(tx, "INSERT INTO session_controllers (session_id, controller, first_run_at) VALUES (@s, @c, @at) ON CONFLICT DO NOTHING",
            ("@s", sessionId), ("@c", ControllerId), ("@at", at.UtcTicks));

    /// <summary>
    /// The machine-wide audit rows (those of no session: e-stops, resets, homing) of <paramref name="kinds"/> that fell in
    /// <paramref name="from"/> .. <paramref name="until"/> (inclusive) and were written by a controller that ran session
    /// <paramref name="sessionId"/>, from the moment it first ran it: the machine's events of that session's window on the
    /// chairs that ran it, never another chair's. Oldest first, at most <paramref name="limit"/> (the oldest). Selected by the
    /// store, by time and controller, however many rows the audit holds. Rows written before schema version 8 name no
    /// controller and are taken by their time alone: on SQLite they are this chair's, the file's only writer; on a shared
    /// PostgreSQL store nothing recorded then tells which chair wrote them.
    /// </summary>
    public IReadOnlyList<(DateTimeOffset At, string Kind, string Message)> ReadMachineAuditWhileRunBy(string sessionId, DateTimeOffset from, DateTimeOffset until,
        IReadOnlyCollection<string> kinds, int limit = 10_000)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(kinds);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        if (kinds.Count == 0) return [];
        var parameters = new List<(string Name, object? Value)> { ("@s", sessionId), ("@from", from.UtcTicks), ("@until", until.UtcTicks), ("@limit", limit) };
        var names = new StringBuilder();
        foreach (var kind in kinds)
        {
            ArgumentNullException.ThrowIfNull(kind, nameof(kinds));
            var name = "@k" + parameters.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            names.Append(names.Length == 0 ? "" : ", ").Append(name);
            parameters.Add((name, kind));
        }
        return Guarded(() =>
        {
            using var cmd = Command(null,
                "SELECT a.at, a.kind, a.message FROM audit a " +
                $"WHERE a.session_id IS NULL AND a.kind IN ({names}) AND a.at >= @from AND a.at <= @until " +
                "AND (a.controller IS NULL OR EXISTS (SELECT 1 FROM session_controllers c WHERE c.session_id = @s AND c.controller = a.controller AND c.first_run_at <= a.at)) " +
                "ORDER BY a.id LIMIT @limit",
                [.. parameters]);
            using var reader = cmd.ExecuteReader();
            var rows = new List<(DateTimeOffset, string, string)>();
            while (reader.Read())
            {
                rows.Add((FromTicks(reader.GetInt64(0)), reader.GetString(1), reader.GetString(2)));
            }
            return rows;
        });
    }
}
