using System.Data;
using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using SmpRobot.Geometry;

namespace SmpRobot.Controller.Storage;

/// <summary>
/// The durable dot ledger: sessions, the state of every dot, and an audit log. Two backends with one schema and one
/// ordered list of migrations: an embedded SQLite file (the default; WAL journal with <c>synchronous=FULL</c>, so every
/// commit is fsync'd before the call returns; foreign keys on), or a PostgreSQL database shared by the chairs of a
/// clinic (<see cref="StoreLocation"/>). Thread-safe: one connection, every call under one lock, and every mutating call
/// is a single transaction that is durable when it returns. Times are stored and returned in UTC. Unknown sessions or
/// dots throw <see cref="KeyNotFoundException"/>. A PostgreSQL server that cannot be reached makes a call throw
/// <see cref="StoreUnavailableException"/> (nothing of that call was committed unless its commit itself was cut off);
/// the next call connects again.
/// </summary>
public sealed partial class LedgerStore : IDisposable
{
    /// <summary>Schema version this code writes and reads.</summary>
    public const int SchemaVersion = 8;

    private const string DotColumns = "seq, dot_id, x_mm, y_mm, z_mm, depth_mm, dwell_ms, pigment_id, state, target_x_mm, target_y_mm, target_z_mm, note";
    private const string SessionColumns = "id, plan_name, profile_name, phase, reason, elapsed_s, kinematic_s, created_at, started_at, ended_at, calibration_id, override_by, override_reason, holds, retracts, last_hold_reason, " +
        "(SELECT ts.treatment_id FROM treatment_sessions ts WHERE ts.session_id = sessions.id), (SELECT ts.number FROM treatment_sessions ts WHERE ts.session_id = sessions.id)";

    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private DbConnection _connection;
    // Dot counts per state of each session (index = state), kept in step with every change this store makes, so a
    // snapshot's tally costs no query. On SQLite this store is the only writer of its file. On PostgreSQL other chairs
    // write too: a session's counts are kept only while this controller runs it (phase Running or Pausing, set through
    // this store), when it is driven by this controller alone (see <see cref="UpdateSession"/>); otherwise they are counted.
    private readonly Dictionary<string, int[]> _tallies = new(StringComparer.Ordinal);
    private bool _disposed;

    /// <summary>Opens (creating the directory, file and schema when needed) the SQLite ledger at <paramref name="databasePath"/>.</summary>
    /// <exception cref="InvalidDataException">The file holds a newer schema, or WAL cannot be enabled.</exception>
    public LedgerStore(string databasePath, TimeProvider timeProvider)
        : this(StoreLocation.Sqlite(databasePath), timeProvider)
    {
    }

    /// <summary>
    /// Opens the ledger at <paramref name="location"/>: a SQLite file (created with its directory when needed) or a
    /// PostgreSQL database (which must exist; its schema is created or brought up to date, one chair at a time).
    /// </summary>
    /// <exception cref="InvalidDataException">The store holds a newer schema, or WAL cannot be enabled.</exception>
    /// <exception cref="StoreUnavailableException">The PostgreSQL server cannot be reached.</exception>
    public LedgerStore(StoreLocation location, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(location);
        _time = timeProvider ?? throw new ArgumentNullException(nameof(timeProvider));
        _location = location;
        _pg = location.IsPostgres;
        if (_pg)
        {
            _connection = new Npgsql.NpgsqlConnection(location.ConnectionString);
            try
            {
                Guarded(() => CreateOrCheckSchema(location.Display));
            }
            catch
            {
                _connection.Dispose();
                throw;
            }
            return;
        }
        var fullPath = Path.GetFullPath(location.SqlitePath!);
        Directory.CreateDirectory(Path.GetDirectoryName(fullPath)!);
        // No pooling: Dispose must really close the file (tests reopen and delete it; a restart must
        // not find a half-open handle).
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
        }.ToString());
        try
        {
            _connection.Open();
            var journal = Scalar<string>(null, "PRAGMA journal_mode=WAL;");
            if (!string.Equals(journal, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidDataException($"ledger '{fullPath}': cannot enable the WAL journal (got '{journal}')");
            }
            Execute(null, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;");
            CreateOrCheckSchema(fullPath);
        }
        catch
        {
            _connection.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Creates a session in phase Created with all its dots Pending, in one transaction. The id looks like
    /// "s-20261123-210512-3f9a" (UTC time from the TimeProvider and a random suffix) and is unique.
    /// <paramref name="dots"/> must carry Seq 0..n-1 (each once) and distinct dot ids.
    /// </summary>
    public SessionRecord CreateSession(string planName, string planJson, string profileName, IReadOnlyList<PlannedDot> dots) =>
        CreateSession(planName, planJson, profileName, dots, null);

    private SessionRecord CreateSession(string planName, string planJson, string profileName, IReadOnlyList<PlannedDot> dots, TreatmentSessionLink? link, NewTreatment? creating = null)
    {
        ArgumentNullException.ThrowIfNull(planName);
        ArgumentNullException.ThrowIfNull(planJson);
        ArgumentNullException.ThrowIfNull(profileName);
        ArgumentNullException.ThrowIfNull(dots);
        var ordered = CheckDots(dots);
        if (link is not null) CheckLink(link, ordered);
        return Guarded(() =>
        {
            var now = _time.GetUtcNow();
            using var tx = Begin();
            // A new treatment with its first session: stored in this transaction, so neither stands without the other.
            if (creating is not null) link = link! with { TreatmentId = InsertTreatment(tx, creating, now).Id };
            if (link is not null) CheckTreatmentSessionFree(tx, link);
            var id = NewId(tx, "s", "sessions", now);

            Execute(tx,
                "INSERT INTO sessions (id, plan_name, plan_json, profile_name, phase, reason, elapsed_s, kinematic_s, created_at, dot_count) " +
                "VALUES (@id, @name, @json, @profile, @phase, '', 0, 0, @now, @count)",
                ("@id", id), ("@name", planName), ("@json", planJson), ("@profile", profileName),
                ("@phase", (int)SessionPhase.Created), ("@now", now.UtcTicks), ("@count", ordered.Count));

            // One prepared command reused for every dot: 30,000 dots insert in a fraction of a second.
            using var insert = _connection.CreateCommand();
            insert.Transaction = tx;
            insert.CommandText =
                "INSERT INTO dots (session_id, seq, dot_id, x_mm, y_mm, z_mm, depth_mm, dwell_ms, pigment_id, state, note, updated_at) " +
                "VALUES (@s, @seq, @id, @x, @y, @z, @depth, @dwell, @pigment, @state, '', @now)";
            var pSeq = AddParameter(insert, "@seq", DbType.Int32);
            var pId = AddParameter(insert, "@id", DbType.String);
            var pX = AddParameter(insert, "@x", DbType.Double);
            var pY = AddParameter(insert, "@y", DbType.Double);
            var pZ = AddParameter(insert, "@z", DbType.Double);
            var pDepth = AddParameter(insert, "@depth", DbType.Double);
            var pDwell = AddParameter(insert, "@dwell", DbType.Double);
            var pPigment = AddParameter(insert, "@pigment", DbType.String);
            AddParameter(insert, "@s", DbType.String).Value = id;
            AddParameter(insert, "@state", DbType.Int32).Value = (int)DotLedgerState.Pending;
            AddParameter(insert, "@now", DbType.Int64).Value = now.UtcTicks;
            insert.Prepare();
            foreach (var dot in ordered)
            {
                pSeq.Value = dot.Seq;
                pId.Value = dot.DotId;
                pX.Value = dot.XMm;
                pY.Value = dot.YMm;
                pZ.Value = dot.ZMm;
                pDepth.Value = dot.DepthMm;
                pDwell.Value = dot.DwellMs;
                pPigment.Value = dot.PigmentId;
                insert.ExecuteNonQuery();
            }
            InsertAudit(tx, id, "session-created", Inv($"session created from plan \"{planName}\" on profile {profileName} with {ordered.Count} dots"), now);
            if (link is not null)
            {
                TreatmentSessionCheckedForTests?.Invoke(tx);
                try
                {
                    InsertTreatmentSession(tx, id, link, now);
                }
                catch (DbException e) when (IsTreatmentSessionTaken(e))
                {
                    // Another chair committed session k of this treatment after the check above (PostgreSQL: both
                    // checked before either committed; the UNIQUE (treatment_id, number) constraint lets one win): the
                    // same refusal as the check's, naming the session that won.
                    tx.Rollback();
                    var winner = Scalar<string?>(null, "SELECT session_id FROM treatment_sessions WHERE treatment_id = @t AND number = @n", ("@t", link.TreatmentId), ("@n", link.Number));
                    throw new InvalidOperationException(Inv($"treatment {link.TreatmentId} already has session {link.Number}{(winner is null ? "" : $" ({winner})")}"), e);
                }
            }
            tx.Commit();
            var counts = new int[6];
            counts[(int)DotLedgerState.Pending] = ordered.Count;
            if (!_pg) _tallies[id] = counts;
            return new SessionRecord(id, planName, profileName, SessionPhase.Created, "", 0, 0, FromTicks(now.UtcTicks), null, null)
            {
                TreatmentId = link?.TreatmentId,
                TreatmentSessionNumber = link?.Number ?? 0,
            };
        });
    }

    /// <summary>The session with this id, or null.</summary>
    public SessionRecord? FindSession(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        return Guarded(() =>
        {
            using var cmd = Command(null, $"SELECT {SessionColumns} FROM sessions WHERE id = @id", ("@id", id));
            using var reader = cmd.ExecuteReader();
            return reader.Read() ? ReadSession(reader) : null;
        });
    }

    /// <summary>The newest <paramref name="limit"/> sessions, newest first.</summary>
    public IReadOnlyList<SessionRecord> ListSessions(int limit = 100)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        return Guarded(() =>
        {
            using var cmd = Command(null, $"SELECT {SessionColumns} FROM sessions ORDER BY created_at DESC, rowid DESC LIMIT @limit", ("@limit", limit));
            using var reader = cmd.ExecuteReader();
            var list = new List<SessionRecord>();
            while (reader.Read())
            {
                list.Add(ReadSession(reader));
            }
            return list;
        });
    }

    /// <summary>Stores the session's phase, reason, timers and start/end times (durable on return).</summary>
    /// <summary>
    /// Stores the session's hold tally over all its runs so far (a run starts from the stored one and adds its own).
    /// Counts must be >= 0.
    /// </summary>
    public void RecordHolds(string id, HoldTally holds)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(holds);
        ArgumentOutOfRangeException.ThrowIfNegative(holds.Holds);
        ArgumentOutOfRangeException.ThrowIfNegative(holds.Retracts);
        Guarded(() =>
        {
            using var tx = Begin();
            var changed = Execute(tx, "UPDATE sessions SET holds = @holds, retracts = @retracts, last_hold_reason = @last WHERE id = @id",
                ("@holds", holds.Holds), ("@retracts", holds.Retracts), ("@last", holds.LastHoldReason), ("@id", id));
            if (changed == 0)
            {
                throw UnknownSession(id);
            }
            tx.Commit();
        });
    }

    public void UpdateSession(string id, SessionPhase phase, string reason, double elapsedSeconds, double kinematicSeconds, DateTimeOffset? startedAt, DateTimeOffset? endedAt)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(reason);
        if (!Enum.IsDefined(phase))
        {
            throw new ArgumentOutOfRangeException(nameof(phase), phase, "unknown session phase");
        }
        if (!(double.IsFinite(elapsedSeconds) && elapsedSeconds >= 0 && double.IsFinite(kinematicSeconds) && kinematicSeconds >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(elapsedSeconds), "elapsed and kinematic seconds must be finite and >= 0");
        }
        Guarded(() =>
        {
            // PostgreSQL: a run takes the session for this controller first (refused when another chair runs it).
            var running = phase is SessionPhase.Running or SessionPhase.Pausing;
            var claimed = running && ClaimRun(id);
            try
            {
                using var tx = Begin();
                var changed = Execute(tx,
                    "UPDATE sessions SET phase = @phase, reason = @reason, elapsed_s = @elapsed, kinematic_s = @kinematic, started_at = @started, ended_at = @ended WHERE id = @id",
                    ("@phase", (int)phase), ("@reason", reason), ("@elapsed", elapsedSeconds), ("@kinematic", kinematicSeconds),
                    ("@started", startedAt?.UtcTicks), ("@ended", endedAt?.UtcTicks), ("@id", id));
                if (changed == 0)
                {
                    throw UnknownSession(id);
                }
                if (running) RecordRunBy(tx, id, _time.GetUtcNow());
                tx.Commit();
            }
            catch
            {
                // A run that did not begin holds nothing: the claim this call took is given back (a claim of a run already
                // under way stays: that run goes on).
                if (claimed) UnclaimRun(id);
                throw;
            }
            if (!running) ReleaseRun(id);
        });
    }

    /// <summary>
    /// Stores a running session's machine and kinematic time only (its phase and reason are left as
    /// they are), so a controller that dies mid-session is restarted with the time it had run.
    /// </summary>
    public void UpdateTimers(string id, double elapsedSeconds, double kinematicSeconds)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (!(double.IsFinite(elapsedSeconds) && elapsedSeconds >= 0 && double.IsFinite(kinematicSeconds) && kinematicSeconds >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(elapsedSeconds), "elapsed and kinematic seconds must be finite and >= 0");
        }
        Guarded(() =>
        {
            if (Execute(null, "UPDATE sessions SET elapsed_s = @elapsed, kinematic_s = @kinematic WHERE id = @id",
                ("@elapsed", elapsedSeconds), ("@kinematic", kinematicSeconds), ("@id", id)) == 0)
            {
                throw UnknownSession(id);
            }
        });
    }

    /// <summary>All dots of a session in execution order (by Seq); empty for an unknown session.</summary>
    public IReadOnlyList<LedgerDot> LoadDots(string sessionId)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        return Guarded(() =>
        {
            using var cmd = Command(null, $"SELECT {DotColumns} FROM dots WHERE session_id = @s ORDER BY seq", ("@s", sessionId));
            return ReadDots(cmd);
        });
    }

    private static List<LedgerDot> ReadDots(DbCommand cmd)
    {
        using var reader = cmd.ExecuteReader();
        var list = new List<LedgerDot>();
        while (reader.Read())
        {
            var dot = new PlannedDot(reader.GetInt32(0), reader.GetString(1), reader.GetDouble(2), reader.GetDouble(3), reader.GetDouble(4), reader.GetDouble(5), reader.GetDouble(6), reader.GetString(7));
            Vec3? target = reader.IsDBNull(9) ? null : new Vec3(reader.GetDouble(9), reader.GetDouble(10), reader.GetDouble(11));
            list.Add(new LedgerDot(dot, (DotLedgerState)reader.GetInt32(8), target, reader.GetString(12)));
        }
        return list;
    }

    /// <summary>
    /// Records the intent to plunge: Pending → Commanded with the gantry target. The commit is fsync'd
    /// before this returns, because the needle goes into the skin right after.
    /// </summary>
    /// <exception cref="InvalidOperationException">The dot is not Pending (names the dot and its state).</exception>
    public void MarkCommanded(string sessionId, int seq, Vec3 targetMm)
    {
        if (!targetMm.IsFinite)
        {
            throw new ArgumentException($"target {targetMm} must be finite", nameof(targetMm));
        }
        Transition(sessionId, seq, DotLedgerState.Pending, DotLedgerState.Commanded, targetMm, null);
    }

    /// <summary>Commanded → Placed, once the firmware proved the motion finished.</summary>
    public void MarkPlaced(string sessionId, int seq) =>
        Transition(sessionId, seq, DotLedgerState.Commanded, DotLedgerState.Placed, null, null);

    /// <summary>
    /// <see cref="MarkPlaced"/> again, after a try whose commit the controller could not see (the record store was cut
    /// off during it): a dot already Placed is that commit having landed, and is no error.
    /// </summary>
    public void MarkPlacedAgain(string sessionId, int seq) =>
        Transition(sessionId, seq, DotLedgerState.Commanded, DotLedgerState.Placed, null, null, alreadyDoneIsSuccess: true);

    /// <summary><see cref="MarkInDoubt"/> again, after a try whose commit the controller could not see: a dot already InDoubt is no error.</summary>
    public void MarkInDoubtAgain(string sessionId, int seq, string note)
    {
        ArgumentNullException.ThrowIfNull(note);
        Transition(sessionId, seq, DotLedgerState.Commanded, DotLedgerState.InDoubt, null, note, alreadyDoneIsSuccess: true);
    }

    /// <summary>Commanded → InDoubt with a note saying why (a fault between plunge and confirmation).</summary>
    public void MarkInDoubt(string sessionId, int seq, string note)
    {
        ArgumentNullException.ThrowIfNull(note);
        Transition(sessionId, seq, DotLedgerState.Commanded, DotLedgerState.InDoubt, null, note);
    }

    /// <summary>
    /// Commanded → Pending, audited: for an intent whose commit the controller could not see (the record store was cut
    /// off during it) and after which no plunge line was written, as the per-dot cycle knows. Returns true when the dot
    /// was Commanded (the commit had landed), false when it is Pending (it had not).
    /// </summary>
    /// <exception cref="InvalidOperationException">The dot is in any other state (names it).</exception>
    public bool WithdrawIntent(string sessionId, int seq, string note)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(note);
        return Guarded(() =>
        {
            using var tx = Begin();
            var changed = Execute(tx,
                "UPDATE dots SET state = @pending, updated_at = @now, target_x_mm = NULL, target_y_mm = NULL, target_z_mm = NULL WHERE session_id = @s AND seq = @seq AND state = @commanded",
                ("@pending", (int)DotLedgerState.Pending), ("@now", _time.GetUtcNow().UtcTicks), ("@s", sessionId), ("@seq", seq), ("@commanded", (int)DotLedgerState.Commanded));
            if (changed == 0)
            {
                var state = Scalar<long?>(tx, "SELECT state FROM dots WHERE session_id = @s AND seq = @seq", ("@s", sessionId), ("@seq", seq));
                if (state is null) throw new KeyNotFoundException(Inv($"session {sessionId} has no dot with seq {seq}"));
                if (state == (int)DotLedgerState.Pending) return false;
                throw new InvalidOperationException(Inv($"dot seq {seq} of session {sessionId} is {(DotLedgerState)state}; only a Commanded dot's intent can be withdrawn"));
            }
            InsertAudit(tx, sessionId, "intent-withdrawn", Inv($"dot seq {seq}: Commanded -> Pending: {note}"), _time.GetUtcNow());
            tx.Commit();
            // Counted again: the kept counts never saw the Commanded whose commit was cut off.
            _tallies.Remove(sessionId);
            return true;
        });
    }

    /// <summary>
    /// Run once at controller start, before any session runs. Every session in Running or Pausing becomes
    /// Faulted with <paramref name="reason"/>; every Commanded dot (of any session: after a restart nobody
    /// knows whether its plunge happened) becomes InDoubt with note = reason. Placed, Pending, Skipped and
    /// InDoubt dots and other phases are left alone. Returns the ids of the sessions touched (oldest
    /// first) and writes one audit row per session. One transaction.
    /// </summary>
    public IReadOnlyList<string> RecoverAfterRestart(string reason)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        return Guarded(() =>
        {
            var now = _time.GetUtcNow();
            using var tx = Begin();
            var affected = new List<(string Id, SessionPhase Phase, long InFlight)>();
            using (var cmd = Command(tx,
                "SELECT s.id, s.phase, (SELECT COUNT(*) FROM dots d WHERE d.session_id = s.id AND d.state = @commanded) AS in_flight " +
                "FROM sessions s " +
                "WHERE (s.phase IN (@running, @pausing) OR EXISTS (SELECT 1 FROM dots d WHERE d.session_id = s.id AND d.state = @commanded)) " +
                // PostgreSQL: a session another chair's live controller runs holds its advisory lock and is left alone.
                (_pg ? "AND pg_try_advisory_xact_lock(hashtextextended(s.id, 0)) " : "") +
                "ORDER BY s.created_at, s.rowid",
                ("@commanded", (int)DotLedgerState.Commanded), ("@running", (int)SessionPhase.Running), ("@pausing", (int)SessionPhase.Pausing)))
            using (var reader = cmd.ExecuteReader())
            {
                while (reader.Read())
                {
                    affected.Add((reader.GetString(0), (SessionPhase)reader.GetInt32(1), reader.GetInt64(2)));
                }
            }
            foreach (var (id, phase, inFlight) in affected)
            {
                Execute(tx, "UPDATE dots SET state = @doubt, note = @reason, updated_at = @now WHERE session_id = @s AND state = @commanded",
                    ("@doubt", (int)DotLedgerState.InDoubt), ("@reason", reason), ("@now", now.UtcTicks), ("@s", id), ("@commanded", (int)DotLedgerState.Commanded));
                var faulted = phase is SessionPhase.Running or SessionPhase.Pausing;
                if (faulted)
                {
                    // The session's reason says what is really in doubt, not what might be.
                    var sessionReason = reason + (inFlight == 0 ? "; no dot was being placed" : Inv($"; {inFlight} dot(s) that were being placed are in doubt"));
                    Execute(tx, "UPDATE sessions SET phase = @faulted, reason = @reason WHERE id = @s",
                        ("@faulted", (int)SessionPhase.Faulted), ("@reason", sessionReason), ("@s", id));
                }
                var phaseText = faulted ? $"phase {phase} -> {SessionPhase.Faulted}" : $"phase {phase} kept";
                InsertAudit(tx, id, "recovered", Inv($"recovered after restart: {phaseText}; {inFlight} commanded dot(s) now in doubt; reason: {reason}"), now);
            }
            tx.Commit();
            _tallies.Clear();
            return affected.Select(a => a.Id).ToList();
        });
    }

    /// <summary>
    /// An operator's decision on dots in doubt: each becomes <paramref name="to"/> (Placed, Pending to redo,
    /// or Skipped). All or nothing, in one transaction with one audit row. Returns how many dots changed.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="to"/> is not Placed/Pending/Skipped, the operator
    /// name is blank, or a dot id is not in the session (names the dot).</exception>
    /// <exception cref="InvalidOperationException">A dot is not InDoubt (names the dot and its state).</exception>
    public int Resolve(string sessionId, IReadOnlyCollection<string> dotIds, DotLedgerState to, string operatorName)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(dotIds);
        ArgumentException.ThrowIfNullOrWhiteSpace(operatorName);
        if (to is not (DotLedgerState.Placed or DotLedgerState.Pending or DotLedgerState.Skipped))
        {
            throw new ArgumentException($"a dot in doubt can only be resolved as Placed, Pending (redo) or Skipped, not {to}", nameof(to));
        }
        var ids = dotIds.Distinct(StringComparer.Ordinal).ToList();
        return Guarded(() =>
        {
            var now = _time.GetUtcNow();
            using var tx = Begin();
            if (Scalar<long>(tx, "SELECT COUNT(*) FROM sessions WHERE id = @s", ("@s", sessionId)) == 0)
            {
                throw UnknownSession(sessionId);
            }
            if (ids.Count == 0)
            {
                return 0;
            }
            using var find = Command(tx, "SELECT seq, state, note FROM dots WHERE session_id = @s AND dot_id = @id", ("@s", sessionId), ("@id", ""));
            var found = new List<(int Seq, string Note)>(ids.Count);
            foreach (var dotId in ids)
            {
                find.Parameters["@id"].Value = dotId;
                using var reader = find.ExecuteReader();
                if (!reader.Read())
                {
                    throw new ArgumentException($"dot {dotId} is not in session {sessionId}", nameof(dotIds));
                }
                var state = (DotLedgerState)reader.GetInt32(1);
                if (state != DotLedgerState.InDoubt)
                {
                    throw new InvalidOperationException($"dot {dotId} of session {sessionId} is {state}; only dots in doubt can be resolved");
                }
                found.Add((reader.GetInt32(0), reader.GetString(2)));
            }
            using var update = Command(tx,
                "UPDATE dots SET state = @to, note = @note, updated_at = @now, " +
                "target_x_mm = CASE WHEN @clear = 1 THEN NULL ELSE target_x_mm END, " +
                "target_y_mm = CASE WHEN @clear = 1 THEN NULL ELSE target_y_mm END, " +
                "target_z_mm = CASE WHEN @clear = 1 THEN NULL ELSE target_z_mm END " +
                "WHERE session_id = @s AND seq = @seq",
                ("@to", (int)to), ("@note", ""), ("@now", now.UtcTicks), ("@clear", to == DotLedgerState.Pending ? 1 : 0), ("@s", sessionId), ("@seq", 0));
            foreach (var (seq, note) in found)
            {
                update.Parameters["@seq"].Value = seq;
                update.Parameters["@note"].Value = $"{note}{(note.Length > 0 ? "; " : "")}resolved as {to} by {operatorName}";
                update.ExecuteNonQuery();
            }
            var listed = string.Join(", ", ids.Take(20)) + (ids.Count > 20 ? Inv($" and {ids.Count - 20} more") : "");
            InsertAudit(tx, sessionId, "resolve", Inv($"{operatorName} resolved {ids.Count} dot(s) in doubt as {to}: {listed}"), now);
            tx.Commit();
            _tallies.Remove(sessionId);
            return ids.Count;
        });
    }

    /// <summary>Counts of the session's dots per state (all zero for an unknown session). Counted once, then kept in step with every change.</summary>
    public DotTally Tally(string sessionId)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        return Guarded(() =>
        {
            if (!_tallies.TryGetValue(sessionId, out var counts))
            {
                counts = new int[6];
                using var cmd = Command(null, "SELECT state, COUNT(*) FROM dots WHERE session_id = @s GROUP BY state", ("@s", sessionId));
                using var reader = cmd.ExecuteReader();
                while (reader.Read())
                {
                    var state = reader.GetInt32(0);
                    if (state is >= 1 and <= 5)
                    {
                        counts[state] = reader.GetInt32(1);
                    }
                }
                if (counts.Sum() > 0 && (!_pg || _running.Contains(sessionId))) _tallies[sessionId] = counts;
            }
            return new DotTally(counts.Sum(), counts[1], counts[2], counts[3], counts[4], counts[5]);
        });
    }

    /// <summary>The session's dots in <paramref name="state"/>, in execution order, at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<LedgerDot> LoadDotsInState(string sessionId, DotLedgerState state, int limit = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        return Guarded(() =>
        {
            using var cmd = Command(null, $"SELECT {DotColumns} FROM dots WHERE session_id = @s AND state = @state ORDER BY seq LIMIT @limit",
                ("@s", sessionId), ("@state", (int)state), ("@limit", limit));
            return ReadDots(cmd);
        });
    }

    /// <summary>Appends an audit row (durable on return). <paramref name="sessionId"/> null: machine-wide.</summary>
    public void Audit(string? sessionId, string kind, string message) => Audit(sessionId, kind, message, null);

    /// <summary>Appends an audit row that happened at <paramref name="at"/> (null = now); durable on return.</summary>
    public void Audit(string? sessionId, string kind, string message, DateTimeOffset? at)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        ArgumentNullException.ThrowIfNull(message);
        Guarded(() =>
        {
            using var tx = Begin();
            if (sessionId is not null && Scalar<long>(tx, "SELECT COUNT(*) FROM sessions WHERE id = @s", ("@s", sessionId)) == 0)
            {
                throw UnknownSession(sessionId);
            }
            InsertAudit(tx, sessionId, kind, message, at ?? _time.GetUtcNow());
            tx.Commit();
        });
    }

    /// <summary>
    /// The latest <paramref name="limit"/> audit rows, oldest first: of one session, or of everything when
    /// <paramref name="sessionId"/> is null.
    /// </summary>
    public IReadOnlyList<(DateTimeOffset At, string Kind, string Message)> ReadAudit(string? sessionId, int limit = 1000)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        return Guarded(() =>
        {
            using var cmd = sessionId is null
                ? Command(null, "SELECT at, kind, message FROM (SELECT id, at, kind, message FROM audit ORDER BY id DESC LIMIT @limit) AS newest ORDER BY id", ("@limit", limit))
                : Command(null, "SELECT at, kind, message FROM (SELECT id, at, kind, message FROM audit WHERE session_id = @s ORDER BY id DESC LIMIT @limit) AS newest ORDER BY id", ("@s", sessionId), ("@limit", limit));
            using var reader = cmd.ExecuteReader();
            var rows = new List<(DateTimeOffset, string, string)>();
            while (reader.Read())
            {
                rows.Add((FromTicks(reader.GetInt64(0)), reader.GetString(1), reader.GetString(2)));
            }
            return rows;
        });
    }

    /// <summary>The plan JSON the session was created from, or null for an unknown session.</summary>
    public string? LoadPlanJson(string sessionId)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        return Guarded(() =>
        {
            using var cmd = Command(null, "SELECT plan_json FROM sessions WHERE id = @s", ("@s", sessionId));
            return cmd.ExecuteScalar() as string;
        });
    }

    /// <summary>Closes the database (a clean close checkpoints the WAL into the main file).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            if (_pg && _connection.State == System.Data.ConnectionState.Open)
            {
                // The sessions' advisory locks go now, not when the server notices the closed connection: a controller
                // started right after this one must be able to recover them.
                try
                {
                    Execute(null, "SELECT pg_advisory_unlock_all()");
                }
                catch (Exception e) when (IsUnreachable(e))
                {
                    // The server is away: it drops the locks with the connection.
                }
            }
            _connection.Dispose();
        }
    }

    /// <summary>
    /// Tests: called in a treatment session's creation between the check that its number is free and its insert, with
    /// the creation's transaction (to let another chair take the number in between, as a race would).
    /// </summary>
    internal Action<DbTransaction>? TreatmentSessionCheckedForTests { get; set; }

    /// <summary>Tests: the lock every call of this store takes (to prove a path does not wait for it).</summary>
    internal Lock GateForTests => _gate;

    /// <summary>Reads a PRAGMA of the live connection (for tests and diagnostics).</summary>
    internal string ReadPragma(string name)
    {
        if (!name.All(c => char.IsAsciiLetter(c) || c == '_'))
        {
            throw new ArgumentException("not a pragma name", nameof(name));
        }
        if (_pg) throw new NotSupportedException("PRAGMAs are SQLite's");
        return Guarded(() =>
        {
            using var cmd = Command(null, $"PRAGMA {name};");
            return Convert.ToString(cmd.ExecuteScalar(), CultureInfo.InvariantCulture) ?? "";
        });
    }

    private void Transition(string sessionId, int seq, DotLedgerState from, DotLedgerState to, Vec3? target, string? note, bool alreadyDoneIsSuccess = false)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        Guarded(() =>
        {
            using var tx = Begin();
            var changed = Execute(tx,
                "UPDATE dots SET state = @to, updated_at = @now, " +
                "target_x_mm = COALESCE(@tx, target_x_mm), target_y_mm = COALESCE(@ty, target_y_mm), target_z_mm = COALESCE(@tz, target_z_mm), " +
                "note = COALESCE(@note, note) " +
                "WHERE session_id = @s AND seq = @seq AND state = @from",
                ("@to", (int)to), ("@now", _time.GetUtcNow().UtcTicks), ("@tx", target?.X), ("@ty", target?.Y), ("@tz", target?.Z),
                ("@note", note), ("@s", sessionId), ("@seq", seq), ("@from", (int)from));
            if (changed != 1)
            {
                using var cmd = Command(tx, "SELECT dot_id, state FROM dots WHERE session_id = @s AND seq = @seq", ("@s", sessionId), ("@seq", seq));
                using var reader = cmd.ExecuteReader();
                if (!reader.Read())
                {
                    throw new KeyNotFoundException(Inv($"session {sessionId} has no dot with seq {seq}"));
                }
                if (alreadyDoneIsSuccess && (DotLedgerState)reader.GetInt32(1) == to) return;
                throw new InvalidOperationException(Inv($"dot {reader.GetString(0)} (seq {seq}) of session {sessionId} is {(DotLedgerState)reader.GetInt32(1)}; only a {from} dot can become {to}"));
            }
            tx.Commit();
            if (_tallies.TryGetValue(sessionId, out var counts))
            {
                counts[(int)from]--;
                counts[(int)to]++;
            }
            TransitionCommittedForTests?.Invoke(to);
        });
    }

    /// <summary>Tests: called after a dot's transition committed, with its new state (a test cuts the store off there, as a connection lost during the commit would look).</summary>
    internal Action<DotLedgerState>? TransitionCommittedForTests { get; set; }

    /// <summary>Tests: while it returns true, every call fails as it does when the store cannot be reached.</summary>
    internal Func<bool>? UnreachableForTests { get; set; }

    private static List<PlannedDot> CheckDots(IReadOnlyList<PlannedDot> dots)
    {
        if (dots.Count == 0)
        {
            throw new ArgumentException("a session needs at least one dot", nameof(dots));
        }
        var ordered = dots.OrderBy(d => d?.Seq ?? -1).ToList();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < ordered.Count; i++)
        {
            var dot = ordered[i] ?? throw new ArgumentException("dots must not contain null", nameof(dots));
            if (dot.Seq != i)
            {
                throw new ArgumentException(Inv($"dot {dot.DotId} has seq {dot.Seq}; seqs must be 0..{dots.Count - 1}, each once"), nameof(dots));
            }
            if (string.IsNullOrEmpty(dot.DotId) || dot.PigmentId is null)
            {
                throw new ArgumentException(Inv($"dot at seq {dot.Seq} needs an id and a pigment"), nameof(dots));
            }
            if (!ids.Add(dot.DotId))
            {
                throw new ArgumentException($"dot id {dot.DotId} appears twice", nameof(dots));
            }
        }
        return ordered;
    }

    private void CreateOrCheckSchema(string fullPath)
    {
        // Read committed (PostgreSQL's default) on purpose: the advisory lock below makes chairs that start together
        // migrate one after the other, and each must then see what the one before it committed.
        using var tx = _connection.BeginTransaction();
        if (_pg) Execute(tx, "SELECT pg_advisory_xact_lock(@key)", ("@key", SchemaLockKey));
        Ddl(tx, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at INTEGER NOT NULL)");
        var version = Scalar<long?>(tx, "SELECT MAX(version) FROM schema_version");
        if (version is null)
        {
            Ddl(tx, """
                CREATE TABLE sessions (
                    id TEXT PRIMARY KEY,
                    plan_name TEXT NOT NULL,
                    plan_json TEXT NOT NULL,
                    profile_name TEXT NOT NULL,
                    phase INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    elapsed_s REAL NOT NULL,
                    kinematic_s REAL NOT NULL,
                    created_at INTEGER NOT NULL,
                    started_at INTEGER NULL,
                    ended_at INTEGER NULL,
                    dot_count INTEGER NOT NULL);
                CREATE INDEX sessions_by_created ON sessions (created_at);
                CREATE TABLE dots (
                    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
                    seq INTEGER NOT NULL,
                    dot_id TEXT NOT NULL,
                    x_mm REAL NOT NULL,
                    y_mm REAL NOT NULL,
                    z_mm REAL NOT NULL,
                    depth_mm REAL NOT NULL,
                    dwell_ms REAL NOT NULL,
                    pigment_id TEXT NOT NULL,
                    state INTEGER NOT NULL CHECK (state BETWEEN 1 AND 5),
                    target_x_mm REAL NULL,
                    target_y_mm REAL NULL,
                    target_z_mm REAL NULL,
                    note TEXT NOT NULL,
                    updated_at INTEGER NOT NULL,
                    PRIMARY KEY (session_id, seq),
                    UNIQUE (session_id, dot_id)) WITHOUT ROWID;
                -- Commanded dots are rare (at most one per running session): a tiny index for restart recovery.
                CREATE INDEX dots_commanded ON dots (session_id) WHERE state = 2;
                CREATE TABLE audit (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    at INTEGER NOT NULL,
                    session_id TEXT NULL REFERENCES sessions (id) ON DELETE CASCADE,
                    kind TEXT NOT NULL,
                    message TEXT NOT NULL);
                CREATE INDEX audit_by_session ON audit (session_id, id);
                """);
            MigrateToVersion2(tx);
            MigrateToVersion3(tx);
            MigrateToVersion4(tx);
            MigrateToVersion5(tx);
            MigrateToVersion6(tx);
            MigrateToVersion7(tx);
            MigrateToVersion8(tx);
            Execute(tx, "INSERT INTO schema_version (version, applied_at) VALUES (@v, @now)", ("@v", SchemaVersion), ("@now", _time.GetUtcNow().UtcTicks));
        }
        else if (version is 1 or 2 or 3 or 4 or 5 or 6 or 7)
        {
            // A ledger of an earlier controller, brought up step by step: 1 → 2 adds calibrations and the sessions'
            // calibration columns, 2 → 3 the sessions' hold tally, 3 → 4 the surface registrations, 4 → 5 their re-checks,
            // 5 → 6 users and the call audit log, 6 → 7 treatments, 7 → 8 the controller of each audit row and of each
            // session's runs.
            if (version == 1)
            {
                MigrateToVersion2(tx);
                Execute(tx, "INSERT INTO schema_version (version, applied_at) VALUES (2, @now)", ("@now", _time.GetUtcNow().UtcTicks));
            }
            if (version <= 2)
            {
                MigrateToVersion3(tx);
                Execute(tx, "INSERT INTO schema_version (version, applied_at) VALUES (3, @now)", ("@now", _time.GetUtcNow().UtcTicks));
            }
            if (version <= 3)
            {
                MigrateToVersion4(tx);
                Execute(tx, "INSERT INTO schema_version (version, applied_at) VALUES (4, @now)", ("@now", _time.GetUtcNow().UtcTicks));
            }
            if (version <= 4)
            {
                MigrateToVersion5(tx);
                Execute(tx, "INSERT INTO schema_version (version, applied_at) VALUES (5, @now)", ("@now", _time.GetUtcNow().UtcTicks));
            }
            if (version <= 5)
            {
                MigrateToVersion6(tx);
                Execute(tx, "INSERT INTO schema_version (version, applied_at) VALUES (6, @now)", ("@now", _time.GetUtcNow().UtcTicks));
            }
            if (version <= 6)
            {
                MigrateToVersion7(tx);
                Execute(tx, "INSERT INTO schema_version (version, applied_at) VALUES (7, @now)", ("@now", _time.GetUtcNow().UtcTicks));
            }
            MigrateToVersion8(tx);
            Execute(tx, "INSERT INTO schema_version (version, applied_at) VALUES (8, @now)", ("@now", _time.GetUtcNow().UtcTicks));
        }
        else if (version != SchemaVersion)
        {
            throw new InvalidDataException(Inv($"ledger '{fullPath}' has schema version {version}; this controller reads version {SchemaVersion}"));
        }
        tx.Commit();
    }

    private void InsertAudit(DbTransaction tx, string? sessionId, string kind, string message, DateTimeOffset at) =>
        Execute(tx, "INSERT INTO audit (at, session_id, kind, message, controller) VALUES (@at, @s, @kind, @message, @controller)",
            ("@at", at.UtcTicks), ("@s", sessionId), ("@kind", kind), ("@message", message), ("@controller", ControllerId));

    private DbCommand Command(DbTransaction? tx, string sql, params (string Name, object? Value)[] parameters)
    {
        var cmd = _connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    private int Execute(DbTransaction? tx, string sql, params (string Name, object? Value)[] parameters)
    {
        using var cmd = Command(tx, sql, parameters);
        return cmd.ExecuteNonQuery();
    }

    private T Scalar<T>(DbTransaction? tx, string sql, params (string Name, object? Value)[] parameters)
    {
        using var cmd = Command(tx, sql, parameters);
        var value = cmd.ExecuteScalar();
        if (value is null or DBNull)
        {
            return default!;
        }
        var type = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        return (T)Convert.ChangeType(value, type, CultureInfo.InvariantCulture);
    }

    private static SessionRecord ReadSession(DbDataReader r) => new(
        r.GetString(0),
        r.GetString(1),
        r.GetString(2),
        (SessionPhase)r.GetInt32(3),
        r.GetString(4),
        r.GetDouble(5),
        r.GetDouble(6),
        FromTicks(r.GetInt64(7)),
        r.IsDBNull(8) ? null : FromTicks(r.GetInt64(8)),
        r.IsDBNull(9) ? null : FromTicks(r.GetInt64(9)),
        r.IsDBNull(10) ? null : r.GetString(10),
        r.IsDBNull(11) ? null : r.GetString(11),
        r.IsDBNull(12) ? null : r.GetString(12))
    {
        Holds = new HoldTally(r.GetInt32(13), r.GetInt32(14), r.GetString(15)),
        TreatmentId = r.IsDBNull(16) ? null : r.GetString(16),
        TreatmentSessionNumber = r.IsDBNull(17) ? 0 : r.GetInt32(17),
    };

    /// <summary>Schema version 3: the automatic holds of a session over all its runs, so resumes and restarts keep them.</summary>
    private void MigrateToVersion3(DbTransaction tx) => Ddl(tx, """
        ALTER TABLE sessions ADD COLUMN holds INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sessions ADD COLUMN retracts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sessions ADD COLUMN last_hold_reason TEXT NOT NULL DEFAULT '';
        """);

    private static DateTimeOffset FromTicks(long utcTicks) => new(utcTicks, TimeSpan.Zero);

    private static KeyNotFoundException UnknownSession(string id) => new($"no session {id}");

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
