using System.Globalization;
using System.Security.Cryptography;
using System.Data;
using System.Data.Common;
using SmpRobot.Geometry;

namespace SmpRobot.Controller.Storage;

/// <summary>
/// A treatment: one client's design, carried out over its sessions (and touch-ups years later). The client is
/// known only by a pseudonymous id (the clinic keeps the key to the person; the controller never holds a name).
/// </summary>
/// <param name="Id">"t-20261205-101500-3f9a".</param>
/// <param name="ClientId">Pseudonymous client id, e.g. "C-0042".</param>
/// <param name="DesignName">The design's own name.</param>
/// <param name="DesignJson">The design file's text as given (its head mesh named as the practitioner named it).</param>
/// <param name="DesignSha256">Lower-case hex SHA-256 of <paramref name="DesignJson"/> (UTF-8).</param>
/// <param name="HeadModelSha256">The head model the design names, kept in <c>head_models</c>.</param>
/// <param name="SessionCount">Sessions the design has (2–4); touch-ups come after them.</param>
/// <param name="CreatedAt">UTC.</param>
/// <param name="CreatedBy">The authenticated user who started it.</param>
public sealed record TreatmentRecord(string Id, string ClientId, string DesignName, string DesignJson, string DesignSha256, string HeadModelSha256,
    int SessionCount, DateTimeOffset CreatedAt, string CreatedBy);

/// <summary>What a session of a treatment is.</summary>
public enum TreatmentSessionKind
{
    /// <summary>Session k of the design's n.</summary>
    Session = 1,

    /// <summary>A touch-up after the design's sessions: restores the design's density where dots faded or are missing.</summary>
    TouchUp = 2,
}

/// <summary>Where a session's dot is in the scalp frame S, and which design dot it is.</summary>
/// <param name="DesignDotId">The design dot it places (a touch-up's dot names the design dot it restores, or its own id).</param>
/// <param name="PointS">Its planned skin point in S, mm.</param>
public sealed record DotInScalp(string DesignDotId, Vec3 PointS);

/// <summary>A treatment to store: the pseudonymous client, the design (its name and text), the head model's SHA-256, its number of sessions (≥ 1), and who started it.</summary>
public sealed record NewTreatment(string ClientId, string DesignName, string DesignJson, string HeadModelSha256, int SessionCount, string CreatedBy)
{
    /// <summary>Throws ArgumentException for an empty field or fewer than one session.</summary>
    public void Check()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(ClientId);
        ArgumentException.ThrowIfNullOrWhiteSpace(DesignName);
        ArgumentException.ThrowIfNullOrWhiteSpace(DesignJson);
        ArgumentException.ThrowIfNullOrWhiteSpace(HeadModelSha256);
        ArgumentOutOfRangeException.ThrowIfLessThan(SessionCount, 1);
        ArgumentNullException.ThrowIfNull(CreatedBy);
    }
}

/// <summary>A session's place in its treatment, given when it is created.</summary>
/// <param name="TreatmentId">The treatment.</param>
/// <param name="Number">1..n for the design's sessions; n+1.. for touch-ups.</param>
/// <param name="Kind">Session or touch-up.</param>
/// <param name="Dots">Every dot of the session (by its dot id) with its design dot and its point in S.</param>
public sealed record TreatmentSessionLink(string TreatmentId, int Number, TreatmentSessionKind Kind, IReadOnlyDictionary<string, DotInScalp> Dots);

/// <summary>A session of a treatment, as stored.</summary>
public sealed record TreatmentSessionRecord(string SessionId, string TreatmentId, int Number, TreatmentSessionKind Kind, DateTimeOffset CreatedAt);

/// <summary>What the camera saw where a dot was placed (<see cref="LedgerStore.RecordDotCheck"/>).</summary>
public enum DotCheckResult
{
    /// <summary>Not judged: no camera or checks off, out of the camera's view of the skin, or the frames could not tell (at the edge of the view, the skin there already dark, no frame between the plunges).</summary>
    NotChecked = 0,

    /// <summary>Seen within the tolerance of its target.</summary>
    OnTarget = 1,

    /// <summary>Seen, farther from its target than the tolerance: flagged for the operator.</summary>
    OffTarget = 2,

    /// <summary>Not seen where it should be: flagged for the operator (never redone automatically).</summary>
    NotSeen = 3,
}

/// <summary>
/// A dot of a treatment's record: where it was planned in S, where it was measured (the planned point moved by the
/// camera's measured offset; null when not seen or not checked), its session, state, time and depth.
/// </summary>
public sealed record TreatmentDotRecord(string SessionId, int SessionNumber, TreatmentSessionKind Kind, string DotId, string DesignDotId,
    Vec3 PlannedS, Vec3? MeasuredS, DotCheckResult Check, double? CheckOffsetMm, DotLedgerState State, DateTimeOffset UpdatedAt, double DepthMm, string Note);

/// <summary>
/// What an accepted dot match changes, written with it in one transaction: the head position's surface registration
/// (T_HS found by the match, its residuals and the dots it used) and the session's pending dots it leaves out.
/// </summary>
/// <param name="ModelSha256">The head model the registration is of.</param>
/// <param name="HeadFromScalpJson">T_HS found, as the plan format writes a transform.</param>
/// <param name="RmsMm">Residual RMS of the matched pairs, mm.</param>
/// <param name="P95Mm">Their 95th percentile, mm.</param>
/// <param name="MaxMm">Their largest, mm.</param>
/// <param name="Contacts">Dots found (the registration's "contacts").</param>
/// <param name="Inliers">Dots matched.</param>
/// <param name="Notes">The registration's note.</param>
/// <param name="LeaveOut">Pending dots to leave out, each with its note.</param>
/// <param name="LeaveOutWhy">Why, for the audit log.</param>
public sealed record DotMatchChanges(string ModelSha256, string HeadFromScalpJson, double RmsMm, double P95Mm, double MaxMm, int Contacts, int Inliers, string Notes,
    IReadOnlyDictionary<string, string> LeaveOut, string LeaveOutWhy);

/// <summary>A match of a session's camera view to the earlier sessions' dots, as stored (residuals -1 when none).</summary>
public sealed record DotMatchRecord(string SessionId, int Patch, DateTimeOffset At, int Found, int Expected, int Matched, double RmsMm, double P95Mm, bool Accepted, string Reason,
    string? RegistrationId, int LeftOut, ReadOnlyMemory<byte>? PicturePng);

public sealed partial class LedgerStore
{
    /// <summary>
    /// Schema version 7: treatments, the sessions that belong to them, and each treatment session dot's point in the
    /// scalp frame S with what the camera's check measured.
    /// </summary>
    private void MigrateToVersion7(DbTransaction tx) => Ddl(tx, """
        CREATE TABLE treatments (
            id TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            design_name TEXT NOT NULL,
            design_json TEXT NOT NULL,
            design_sha256 TEXT NOT NULL,
            head_model_sha256 TEXT NOT NULL REFERENCES head_models (sha256),
            session_count INTEGER NOT NULL CHECK (session_count BETWEEN 1 AND 8),
            created_at INTEGER NOT NULL,
            created_by TEXT NOT NULL);
        CREATE INDEX treatments_by_client ON treatments (client_id, created_at);
        CREATE TABLE treatment_sessions (
            session_id TEXT PRIMARY KEY REFERENCES sessions (id),
            treatment_id TEXT NOT NULL REFERENCES treatments (id),
            number INTEGER NOT NULL CHECK (number >= 1),
            kind INTEGER NOT NULL CHECK (kind IN (1, 2)),
            created_at INTEGER NOT NULL,
            UNIQUE (treatment_id, number));
        CREATE TABLE dot_records (
            session_id TEXT NOT NULL REFERENCES treatment_sessions (session_id),
            dot_id TEXT NOT NULL,
            design_dot_id TEXT NOT NULL,
            s_x_mm REAL NOT NULL,
            s_y_mm REAL NOT NULL,
            s_z_mm REAL NOT NULL,
            check_result INTEGER NOT NULL DEFAULT 0 CHECK (check_result BETWEEN 0 AND 3),
            measured_x_mm REAL NULL,
            measured_y_mm REAL NULL,
            measured_z_mm REAL NULL,
            check_offset_mm REAL NULL,
            checked_at INTEGER NULL,
            PRIMARY KEY (session_id, dot_id));
        CREATE TABLE dot_matches (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL REFERENCES treatment_sessions (session_id),
            patch INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            found INTEGER NOT NULL,
            expected INTEGER NOT NULL,
            matched INTEGER NOT NULL,
            rms_mm REAL NOT NULL,
            p95_mm REAL NOT NULL,
            accepted INTEGER NOT NULL,
            reason TEXT NOT NULL,
            registration_id TEXT NULL,
            left_out INTEGER NOT NULL,
            picture_png BLOB NULL);
        """);

    /// <summary>
    /// Stores a new treatment. The head model (<paramref name="headModelSha256"/>) must already be kept
    /// (<see cref="SaveHeadModel"/>). The id is unique, from the TimeProvider's UTC time and a random suffix.
    /// </summary>
    public TreatmentRecord CreateTreatment(string clientId, string designName, string designJson, string headModelSha256, int sessionCount, string createdBy)
    {
        var treatment = new NewTreatment(clientId, designName, designJson, headModelSha256, sessionCount, createdBy);
        treatment.Check();
        return Guarded(() =>
        {
            using var tx = Begin();
            var record = InsertTreatment(tx, treatment, _time.GetUtcNow());
            tx.Commit();
            return record;
        });
    }

    /// <summary>
    /// A new treatment and its first session, in one transaction: both are stored, or neither (a store that goes away
    /// part-way leaves no treatment without its session 1). <paramref name="link"/>'s treatment id is ignored: the new
    /// treatment's is used. Returns the session, with its <see cref="SessionRecord.TreatmentId"/> set.
    /// </summary>
    public SessionRecord CreateTreatmentWithFirstSession(NewTreatment treatment, string planName, string planJson, string profileName, IReadOnlyList<PlannedDot> dots, TreatmentSessionLink link)
    {
        ArgumentNullException.ThrowIfNull(treatment);
        ArgumentNullException.ThrowIfNull(link);
        treatment.Check();
        return CreateSession(planName, planJson, profileName, dots, link with { TreatmentId = "(new)" }, treatment);
    }

    /// <summary>Inserts <paramref name="t"/> (in <paramref name="tx"/>) under a new id, with its audit row.</summary>
    private TreatmentRecord InsertTreatment(DbTransaction tx, NewTreatment t, DateTimeOffset now)
    {
        var designSha = Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(t.DesignJson)));
        var id = NewId(tx, "t", "treatments", now);
        Execute(tx,
            "INSERT INTO treatments (id, client_id, design_name, design_json, design_sha256, head_model_sha256, session_count, created_at, created_by) " +
            "VALUES (@id, @client, @name, @json, @sha, @model, @count, @now, @by)",
            ("@id", id), ("@client", t.ClientId), ("@name", t.DesignName), ("@json", t.DesignJson), ("@sha", designSha), ("@model", t.HeadModelSha256),
            ("@count", t.SessionCount), ("@now", now.UtcTicks), ("@by", t.CreatedBy));
        InsertAudit(tx, null, "treatment-created", Inv($"treatment {id} for client {t.ClientId} from design \"{t.DesignName}\" ({t.SessionCount} sessions) by {t.CreatedBy}"), now);
        return new TreatmentRecord(id, t.ClientId, t.DesignName, t.DesignJson, designSha, t.HeadModelSha256, t.SessionCount, FromTicks(now.UtcTicks), t.CreatedBy);
    }

    /// <summary>The treatment with this id, or null.</summary>
    public TreatmentRecord? FindTreatment(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        return Guarded(() =>
        {
            using var cmd = Command(null, $"SELECT {TreatmentColumns} FROM treatments WHERE id = @id", ("@id", id));
            using var reader = cmd.ExecuteReader();
            return reader.Read() ? ReadTreatment(reader) : null;
        });
    }

    /// <summary>Treatments, newest first; only <paramref name="clientId"/>'s when given.</summary>
    public IReadOnlyList<TreatmentRecord> ListTreatments(string? clientId = null, int limit = 100)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        return Guarded(() =>
        {
            using var cmd = clientId is null
                ? Command(null, $"SELECT {TreatmentColumns} FROM treatments ORDER BY created_at DESC, id DESC LIMIT @limit", ("@limit", limit))
                : Command(null, $"SELECT {TreatmentColumns} FROM treatments WHERE client_id = @client ORDER BY created_at DESC, id DESC LIMIT @limit", ("@client", clientId), ("@limit", limit));
            using var reader = cmd.ExecuteReader();
            var list = new List<TreatmentRecord>();
            while (reader.Read()) list.Add(ReadTreatment(reader));
            return list;
        });
    }

    /// <summary>
    /// Creates a session of a treatment (as <see cref="CreateSession(string, string, string, IReadOnlyList{PlannedDot})"/>),
    /// with its place in the treatment and every dot's point in S, in one transaction. Throws
    /// <see cref="InvalidOperationException"/> when the treatment already has a session of that number (two chairs
    /// creating the same session: one wins), <see cref="KeyNotFoundException"/> for an unknown treatment, and
    /// <see cref="ArgumentException"/> when a dot has no point in S.
    /// </summary>
    public SessionRecord CreateTreatmentSession(string planName, string planJson, string profileName, IReadOnlyList<PlannedDot> dots, TreatmentSessionLink link)
    {
        ArgumentNullException.ThrowIfNull(link);
        return CreateSession(planName, planJson, profileName, dots, link);
    }

    /// <summary>The treatment's sessions (touch-ups included), by number.</summary>
    public IReadOnlyList<TreatmentSessionRecord> ListTreatmentSessions(string treatmentId)
    {
        ArgumentNullException.ThrowIfNull(treatmentId);
        return Guarded(() =>
        {
            using var cmd = Command(null, "SELECT session_id, treatment_id, number, kind, created_at FROM treatment_sessions WHERE treatment_id = @t ORDER BY number", ("@t", treatmentId));
            using var reader = cmd.ExecuteReader();
            var list = new List<TreatmentSessionRecord>();
            while (reader.Read()) list.Add(ReadTreatmentSession(reader));
            return list;
        });
    }

    /// <summary>The treatment session <paramref name="sessionId"/> belongs to, or null for a session outside any treatment.</summary>
    public TreatmentSessionRecord? FindTreatmentSession(string sessionId)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        return Guarded(() =>
        {
            using var cmd = Command(null, "SELECT session_id, treatment_id, number, kind, created_at FROM treatment_sessions WHERE session_id = @s", ("@s", sessionId));
            using var reader = cmd.ExecuteReader();
            return reader.Read() ? ReadTreatmentSession(reader) : null;
        });
    }

    /// <summary>
    /// Every dot of every session of the treatment (all states), by session number then execution order: the
    /// treatment's record. <paramref name="upToNumber"/> keeps only sessions numbered at most that.
    /// </summary>
    public IReadOnlyList<TreatmentDotRecord> LoadTreatmentDots(string treatmentId, int upToNumber = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(treatmentId);
        return Guarded(() =>
        {
            using var cmd = Command(null,
                "SELECT ts.session_id, ts.number, ts.kind, d.dot_id, r.design_dot_id, r.s_x_mm, r.s_y_mm, r.s_z_mm, r.check_result, " +
                "r.measured_x_mm, r.measured_y_mm, r.measured_z_mm, r.check_offset_mm, d.state, d.updated_at, d.depth_mm, d.note " +
                "FROM treatment_sessions ts JOIN dots d ON d.session_id = ts.session_id " +
                "JOIN dot_records r ON r.session_id = d.session_id AND r.dot_id = d.dot_id " +
                "WHERE ts.treatment_id = @t AND ts.number <= @n ORDER BY ts.number, d.seq",
                ("@t", treatmentId), ("@n", upToNumber));
            using var reader = cmd.ExecuteReader();
            var list = new List<TreatmentDotRecord>();
            while (reader.Read())
            {
                var measured = reader.IsDBNull(9) ? (Vec3?)null : new Vec3(reader.GetDouble(9), reader.GetDouble(10), reader.GetDouble(11));
                list.Add(new TreatmentDotRecord(reader.GetString(0), reader.GetInt32(1), (TreatmentSessionKind)reader.GetInt32(2), reader.GetString(3), reader.GetString(4),
                    new Vec3(reader.GetDouble(5), reader.GetDouble(6), reader.GetDouble(7)), measured, (DotCheckResult)reader.GetInt32(8),
                    reader.IsDBNull(12) ? null : reader.GetDouble(12), (DotLedgerState)reader.GetInt32(13), FromTicks(reader.GetInt64(14)), reader.GetDouble(15), reader.GetString(16)));
            }
            return list;
        });
    }

    /// <summary>
    /// Records the camera's check of a placed dot: <paramref name="measuredS"/> (null when not seen) and its distance from
    /// the target. Durable on return. Throws <see cref="KeyNotFoundException"/> when the dot is not a treatment session's.
    /// </summary>
    public void RecordDotCheck(string sessionId, string dotId, DotCheckResult result, Vec3? measuredS, double? offsetMm)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(dotId);
        if (!Enum.IsDefined(result)) throw new ArgumentOutOfRangeException(nameof(result), result, "unknown check result");
        if (measuredS is { IsFinite: false }) throw new ArgumentException("the measured point must be finite", nameof(measuredS));
        Guarded(() =>
        {
            using var tx = Begin();
            var changed = Execute(tx,
                "UPDATE dot_records SET check_result = @r, measured_x_mm = @x, measured_y_mm = @y, measured_z_mm = @z, check_offset_mm = @o, checked_at = @now " +
                "WHERE session_id = @s AND dot_id = @d",
                ("@r", (int)result), ("@x", measuredS?.X), ("@y", measuredS?.Y), ("@z", measuredS?.Z), ("@o", offsetMm), ("@now", _time.GetUtcNow().UtcTicks),
                ("@s", sessionId), ("@d", dotId));
            if (changed != 1) throw new KeyNotFoundException($"session {sessionId} has no treatment dot {dotId}");
            tx.Commit();
        });
    }

    /// <summary>
    /// Leaves Pending dots out of a session before any of them is placed (Pending → Skipped, with the dot's note from
    /// <paramref name="notesByDotId"/>), e.g. a new dot that would land closer to an earlier session's dot, found by the
    /// camera, than the design allows. One transaction, audited with <paramref name="why"/>; returns how many were left
    /// out. A dot that is not Pending is refused (<see cref="InvalidOperationException"/>) and nothing changes.
    /// </summary>
    public int LeaveOut(string sessionId, IReadOnlyDictionary<string, string> notesByDotId, string why = "closer to an earlier session's dot than the design allows")
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(notesByDotId);
        ArgumentNullException.ThrowIfNull(why);
        if (notesByDotId.Count == 0) return 0;
        return Guarded(() =>
        {
            var now = _time.GetUtcNow();
            using var tx = Begin();
            LeaveOutIn(tx, sessionId, notesByDotId, why, now);
            tx.Commit();
            CountLeftOut(sessionId, notesByDotId.Count);
            return notesByDotId.Count;
        });
    }

    private void LeaveOutIn(DbTransaction tx, string sessionId, IReadOnlyDictionary<string, string> notesByDotId, string why, DateTimeOffset now)
    {
        if (notesByDotId.Count == 0) return;
        foreach (var (dotId, note) in notesByDotId)
        {
            var changed = Execute(tx, "UPDATE dots SET state = @to, note = @note, updated_at = @now WHERE session_id = @s AND dot_id = @d AND state = @from",
                ("@to", (int)DotLedgerState.Skipped), ("@note", note), ("@now", now.UtcTicks), ("@s", sessionId), ("@d", dotId), ("@from", (int)DotLedgerState.Pending));
            if (changed != 1) throw new InvalidOperationException($"dot {dotId} of session {sessionId} is not Pending: only a dot not yet placed can be left out");
        }
        InsertAudit(tx, sessionId, "dots-left-out", Inv($"{notesByDotId.Count} dot(s) left out: {why}"), now);
    }

    private void CountLeftOut(string sessionId, int count)
    {
        if (count > 0 && _tallies.TryGetValue(sessionId, out var counts))
        {
            counts[(int)DotLedgerState.Pending] -= count;
            counts[(int)DotLedgerState.Skipped] += count;
        }
    }

    /// <summary>
    /// Stores the match of a session's camera view to the earlier sessions' dots (accepted or refused: both are kept for
    /// the record). An accepted match brings its <paramref name="changes"/>: the head position's new surface registration
    /// and the pending dots it leaves out, written with the match in one transaction (all or nothing). A dot to leave out
    /// that is no longer Pending refuses the whole (<see cref="InvalidOperationException"/>).
    /// </summary>
    public DotMatchRecord SaveDotMatch(string sessionId, int patch, int found, int expected, int matched, double rmsMm, double p95Mm, bool accepted, string reason,
        DotMatchChanges? changes, byte[]? picturePng)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(reason);
        if (changes is not null && !accepted) throw new ArgumentException("a refused match changes nothing", nameof(changes));
        return Guarded(() =>
        {
            var now = _time.GetUtcNow();
            using var tx = Begin();
            string? registrationId = null;
            if (changes is not null)
            {
                registrationId = InsertSurfaceRegistration(tx, sessionId, patch, changes.ModelSha256, changes.HeadFromScalpJson, changes.RmsMm, changes.P95Mm, changes.MaxMm,
                    changes.Contacts, changes.Inliers, "[]", valid: true, changes.Notes, heightMapJson: null, now).Id;
                LeaveOutIn(tx, sessionId, changes.LeaveOut, changes.LeaveOutWhy, now);
            }
            var leftOut = changes?.LeaveOut.Count ?? 0;
            Execute(tx, "INSERT INTO dot_matches (session_id, patch, created_at, found, expected, matched, rms_mm, p95_mm, accepted, reason, registration_id, left_out, picture_png) " +
                "VALUES (@s, @p, @now, @f, @e, @m, @rms, @p95, @a, @reason, @reg, @left, @png)",
                ("@s", sessionId), ("@p", patch), ("@now", now.UtcTicks), ("@f", found), ("@e", expected), ("@m", matched), ("@rms", Residual(rmsMm)), ("@p95", Residual(p95Mm)),
                ("@a", accepted ? 1 : 0), ("@reason", reason), ("@reg", registrationId), ("@left", leftOut), ("@png", picturePng));
            InsertAudit(tx, sessionId, "dot-match", Inv($"head position {patch}: {(accepted ? "matched" : "refused")} {matched} of {found} dots found ({expected} expected in view): {reason}"), now);
            tx.Commit();
            CountLeftOut(sessionId, leftOut);
            return new DotMatchRecord(sessionId, patch, FromTicks(now.UtcTicks), found, expected, matched, rmsMm, p95Mm, accepted, reason, registrationId, leftOut, picturePng);
        });
    }

    /// <summary>The dot matches of a session, oldest first.</summary>
    public IReadOnlyList<DotMatchRecord> ListDotMatches(string sessionId)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        return Guarded(() =>
        {
            using var cmd = Command(null, "SELECT session_id, patch, created_at, found, expected, matched, rms_mm, p95_mm, accepted, reason, registration_id, left_out, picture_png " +
                "FROM dot_matches WHERE session_id = @s ORDER BY id", ("@s", sessionId));
            using var r = cmd.ExecuteReader();
            var list = new List<DotMatchRecord>();
            while (r.Read())
            {
                list.Add(new DotMatchRecord(r.GetString(0), r.GetInt32(1), FromTicks(r.GetInt64(2)), r.GetInt32(3), r.GetInt32(4), r.GetInt32(5), r.GetDouble(6), r.GetDouble(7),
                    r.GetInt32(8) == 1, r.GetString(9), r.IsDBNull(10) ? null : r.GetString(10), r.GetInt32(11), r.IsDBNull(12) ? null : (byte[])r.GetValue(12)));
            }
            return list;
        });
    }

    // A refusal with nothing matched has no residual: stored as -1 (NOT NULL column).
    private static double Residual(double v) => double.IsFinite(v) ? v : -1;

    private const string TreatmentColumns = "id, client_id, design_name, design_json, design_sha256, head_model_sha256, session_count, created_at, created_by";

    private static TreatmentRecord ReadTreatment(DbDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetInt32(6), FromTicks(r.GetInt64(7)), r.GetString(8));

    private static TreatmentSessionRecord ReadTreatmentSession(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetInt32(2), (TreatmentSessionKind)r.GetInt32(3), FromTicks(r.GetInt64(4)));

    private static void CheckLink(TreatmentSessionLink link, List<PlannedDot> dots)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(link.TreatmentId);
        ArgumentOutOfRangeException.ThrowIfLessThan(link.Number, 1);
        if (!Enum.IsDefined(link.Kind)) throw new ArgumentOutOfRangeException(nameof(link), link.Kind, "unknown treatment session kind");
        foreach (var dot in dots)
        {
            if (!link.Dots.TryGetValue(dot.DotId, out var inScalp) || inScalp is null || !inScalp.PointS.IsFinite || string.IsNullOrEmpty(inScalp.DesignDotId))
            {
                throw new ArgumentException($"dot {dot.DotId} has no point in the scalp frame", nameof(link));
            }
        }
        if (link.Dots.Count != dots.Count) throw new ArgumentException("the link names dots the session does not have", nameof(link));
    }

    private void CheckTreatmentSessionFree(DbTransaction tx, TreatmentSessionLink link)
    {
        if (Scalar<long>(tx, "SELECT COUNT(*) FROM treatments WHERE id = @t", ("@t", link.TreatmentId)) == 0)
        {
            throw new KeyNotFoundException($"no treatment {link.TreatmentId}");
        }
        if (Scalar<string?>(tx, "SELECT session_id FROM treatment_sessions WHERE treatment_id = @t AND number = @n", ("@t", link.TreatmentId), ("@n", link.Number)) is { } existing)
        {
            throw new InvalidOperationException(Inv($"treatment {link.TreatmentId} already has session {link.Number} ({existing})"));
        }
    }

    private void InsertTreatmentSession(DbTransaction tx, string sessionId, TreatmentSessionLink link, DateTimeOffset now)
    {
        Execute(tx, "INSERT INTO treatment_sessions (session_id, treatment_id, number, kind, created_at) VALUES (@s, @t, @n, @k, @now)",
            ("@s", sessionId), ("@t", link.TreatmentId), ("@n", link.Number), ("@k", (int)link.Kind), ("@now", now.UtcTicks));
        using var insert = _connection.CreateCommand();
        insert.Transaction = tx;
        insert.CommandText = "INSERT INTO dot_records (session_id, dot_id, design_dot_id, s_x_mm, s_y_mm, s_z_mm) VALUES (@s, @d, @design, @x, @y, @z)";
        AddParameter(insert, "@s", DbType.String).Value = sessionId;
        var pDot = AddParameter(insert, "@d", DbType.String);
        var pDesign = AddParameter(insert, "@design", DbType.String);
        var pX = AddParameter(insert, "@x", DbType.Double);
        var pY = AddParameter(insert, "@y", DbType.Double);
        var pZ = AddParameter(insert, "@z", DbType.Double);
        insert.Prepare();
        foreach (var (dotId, inScalp) in link.Dots)
        {
            pDot.Value = dotId;
            pDesign.Value = inScalp.DesignDotId;
            pX.Value = inScalp.PointS.X;
            pY.Value = inScalp.PointS.Y;
            pZ.Value = inScalp.PointS.Z;
            insert.ExecuteNonQuery();
        }
        InsertAudit(tx, sessionId, "treatment-session", Inv($"{(link.Kind == TreatmentSessionKind.TouchUp ? "touch-up" : "session")} {link.Number} of treatment {link.TreatmentId}"), now);
    }
}
