using System.Globalization;
using System.Security.Cryptography;
using System.Data.Common;

namespace SmpRobot.Controller.Storage;

/// <summary>
/// A stored surface registration: the head model fitted to today's probed skin (never changed once stored).
/// </summary>
/// <param name="Id">"r-20261205-091512-3f9a".</param>
/// <param name="SessionId">The session whose patch was probed, or null for a registration made outside a session.</param>
/// <param name="Patch">The plan's head position (1-based; 0: the plan has none).</param>
/// <param name="CreatedAt">UTC.</param>
/// <param name="ModelSha256">SHA-256 of the head model file that was fitted.</param>
/// <param name="HeadFromScalpJson">T_HS as JSON (rotation vector, degrees; translation, mm).</param>
/// <param name="RmsMm">RMS of the inlier residuals, mm.</param>
/// <param name="P95Mm">95th percentile of the inlier residuals, mm.</param>
/// <param name="MaxMm">Largest inlier residual, mm.</param>
/// <param name="Contacts">Probes that touched the skin.</param>
/// <param name="Inliers">Contacts the fit rests on.</param>
/// <param name="ContactsJson">Every probe: where it was aimed, where it touched (G and H), its residual, whether it was used.</param>
/// <param name="Valid">False when it did not meet the profile's tolerances (stored for the record, never used).</param>
/// <param name="Notes">Why it is not valid, or the operator's notes.</param>
public sealed record SurfaceRegistrationRecord(string Id, string? SessionId, int Patch, DateTimeOffset CreatedAt, string ModelSha256, string HeadFromScalpJson,
    double RmsMm, double P95Mm, double MaxMm, int Contacts, int Inliers, string ContactsJson, bool Valid, string Notes)
{
    /// <summary>
    /// Why a session's re-check withdrew it (the skin was no longer where it puts it, or the probe failed), or null.
    /// A withdrawn registration is never used again: the head position is probed anew.
    /// </summary>
    public string? WithdrawnBecause { get; init; }

    /// <summary>
    /// For a plan without a head model: the probed height map (<see cref="Treatment.Surface.HeightMap.ToJson"/>) the
    /// dots are placed on; null for a registration of a head model. Its <see cref="ModelSha256"/> is then
    /// <see cref="LedgerStore.HeightMapModel"/> and its T_HS the identity.
    /// </summary>
    public string? HeightMapJson { get; init; }

    /// <summary>Valid and not withdrawn: dots may be placed on it.</summary>
    public bool Usable => Valid && WithdrawnBecause is null;
}

/// <summary>One re-check of a registration during a session: one probe at a dot's skin.</summary>
/// <param name="RegistrationId">The registration checked.</param>
/// <param name="SessionId">The session running.</param>
/// <param name="At">UTC.</param>
/// <param name="DotId">The dot whose skin was probed (the next one to place).</param>
/// <param name="DeviationMm">The contact's distance to the registered surface along its normal (+: outside), mm; NaN when the probe failed.</param>
/// <param name="Ok">Within the profile's tolerance; a failed check withdraws the registration.</param>
/// <param name="Notes">What was found.</param>
public sealed record SurfaceCheckRecord(string RegistrationId, string SessionId, DateTimeOffset At, string DotId, double DeviationMm, bool Ok, string Notes);

public sealed partial class LedgerStore
{
    private const string SurfaceColumns = "id, session_id, patch, created_at, model_sha256, head_from_scalp_json, rms_mm, p95_mm, max_mm, contacts, inliers, contacts_json, valid, notes";

    /// <summary>The model named by a height-map registration (a plan without a head model).</summary>
    public const string HeightMapModel = "height-map";

    /// <summary>The columns read back: the stored ones and why a failed re-check withdrew it (null when none did).</summary>
    private const string SurfaceSelect = "SELECT id, session_id, patch, created_at, model_sha256, head_from_scalp_json, rms_mm, p95_mm, max_mm, contacts, inliers, contacts_json, valid, notes, height_map_json, "
        + "(SELECT c.notes FROM surface_checks c WHERE c.registration_id = r.id AND c.ok = 0 ORDER BY c.id LIMIT 1) FROM surface_registrations r";

    /// <summary>Schema version 5: the re-checks of a registration during a session (append-only; a failed one withdraws it), and height-map registrations.</summary>
    private void MigrateToVersion5(DbTransaction tx) => Ddl(tx, """
        CREATE TABLE surface_checks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            registration_id TEXT NOT NULL REFERENCES surface_registrations (id) ON DELETE CASCADE,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            at INTEGER NOT NULL,
            dot_id TEXT NOT NULL,
            deviation_mm REAL NULL,
            ok INTEGER NOT NULL,
            notes TEXT NOT NULL);
        CREATE INDEX surface_checks_by_registration ON surface_checks (registration_id, ok);
        ALTER TABLE surface_registrations ADD COLUMN height_map_json TEXT NULL;
        """);

    /// <summary>
    /// Records a re-check of <paramref name="registrationId"/> (audited in the same transaction). A failed one
    /// withdraws the registration: <see cref="LatestSurfaceRegistration"/> no longer returns it.
    /// </summary>
    public SurfaceCheckRecord SaveSurfaceCheck(string registrationId, string sessionId, string dotId, double deviationMm, bool ok, string notes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(registrationId);
        ArgumentException.ThrowIfNullOrWhiteSpace(sessionId);
        ArgumentNullException.ThrowIfNull(dotId);
        ArgumentNullException.ThrowIfNull(notes);
        return Guarded(() =>
        {
            var now = _time.GetUtcNow();
            using var tx = Begin();
            Execute(tx, "INSERT INTO surface_checks (registration_id, session_id, at, dot_id, deviation_mm, ok, notes) VALUES (@r, @s, @at, @dot, @dev, @ok, @notes)",
                ("@r", registrationId), ("@s", sessionId), ("@at", now.UtcTicks), ("@dot", dotId), ("@dev", double.IsFinite(deviationMm) ? deviationMm : null), ("@ok", ok ? 1 : 0), ("@notes", notes));
            InsertAudit(tx, sessionId, ok ? "surface-checked" : "surface-withdrawn",
                ok ? Inv($"surface registration {registrationId} re-checked at dot {dotId}: {notes}") : Inv($"surface registration {registrationId} withdrawn at dot {dotId}: {notes}"), now);
            tx.Commit();
            return new SurfaceCheckRecord(registrationId, sessionId, FromTicks(now.UtcTicks), dotId, deviationMm, ok, notes);
        });
    }

    /// <summary>How many of a session's dots became Placed after <paramref name="since"/> (a registration, or its last re-check).</summary>
    public int CountPlacedSince(string sessionId, DateTimeOffset since)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        return Guarded(() =>
        {
            return (int)Scalar<long>(null, "SELECT COUNT(*) FROM dots WHERE session_id = @s AND state = @placed AND updated_at > @since",
                ("@s", sessionId), ("@placed", (int)DotLedgerState.Placed), ("@since", since.UtcTicks));
        });
    }

    /// <summary>Every re-check of a session, oldest first.</summary>
    public IReadOnlyList<SurfaceCheckRecord> ListSurfaceChecks(string sessionId)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        return Guarded(() =>
        {
            using var cmd = Command(null, "SELECT registration_id, session_id, at, dot_id, deviation_mm, ok, notes FROM surface_checks WHERE session_id = @s ORDER BY id", ("@s", sessionId));
            using var reader = cmd.ExecuteReader();
            var list = new List<SurfaceCheckRecord>();
            while (reader.Read())
            {
                list.Add(new SurfaceCheckRecord(reader.GetString(0), reader.GetString(1), FromTicks(reader.GetInt64(2)), reader.GetString(3),
                    reader.IsDBNull(4) ? double.NaN : reader.GetDouble(4), reader.GetInt32(5) != 0, reader.GetString(6)));
            }
            return list;
        });
    }

    /// <summary>Schema version 4: surface registrations (the head model fitted to probed skin, per session and head position).</summary>
    private void MigrateToVersion4(DbTransaction tx) => Ddl(tx, """
        CREATE TABLE surface_registrations (
            id TEXT PRIMARY KEY,
            session_id TEXT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            patch INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            model_sha256 TEXT NOT NULL,
            head_from_scalp_json TEXT NOT NULL,
            rms_mm REAL NOT NULL,
            p95_mm REAL NOT NULL,
            max_mm REAL NOT NULL,
            contacts INTEGER NOT NULL,
            inliers INTEGER NOT NULL,
            contacts_json TEXT NOT NULL,
            valid INTEGER NOT NULL,
            notes TEXT NOT NULL);
        CREATE INDEX surface_latest ON surface_registrations (session_id, patch, created_at);
        CREATE TABLE head_models (
            sha256 TEXT PRIMARY KEY,
            file_name TEXT NOT NULL,
            bytes BLOB NOT NULL,
            created_at INTEGER NOT NULL);
        """);

    /// <summary>Keeps a head model file by its SHA-256 (once: the same bytes are stored once, whatever sessions use them).</summary>
    public void SaveHeadModel(string sha256, string fileName, byte[] bytes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sha256);
        ArgumentException.ThrowIfNullOrWhiteSpace(fileName);
        ArgumentNullException.ThrowIfNull(bytes);
        Guarded(() =>
        {
            Execute(null, "INSERT INTO head_models (sha256, file_name, bytes, created_at) VALUES (@sha, @name, @bytes, @now) ON CONFLICT DO NOTHING",
                ("@sha", sha256), ("@name", fileName), ("@bytes", bytes), ("@now", _time.GetUtcNow().UtcTicks));
        });
    }

    /// <summary>The head model file with this SHA-256 (its name and bytes), or null when it was never sent.</summary>
    public (string FileName, byte[] Bytes)? LoadHeadModel(string sha256)
    {
        ArgumentNullException.ThrowIfNull(sha256);
        return Guarded(() =>
        {
            using var cmd = Command(null, "SELECT file_name, bytes FROM head_models WHERE sha256 = @sha", ("@sha", sha256));
            using var reader = cmd.ExecuteReader();
            return reader.Read() ? (reader.GetString(0), (byte[])reader.GetValue(1)) : ((string, byte[])?)null;
        });
    }

    /// <summary>Stores a surface registration (and an audit entry) in one transaction; returns it with its new id.</summary>
    public SurfaceRegistrationRecord SaveSurfaceRegistration(string? sessionId, int patch, string modelSha256, string headFromScalpJson,
        double rmsMm, double p95Mm, double maxMm, int contacts, int inliers, string contactsJson, bool valid, string notes, string? heightMapJson = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelSha256);
        ArgumentException.ThrowIfNullOrWhiteSpace(headFromScalpJson);
        ArgumentNullException.ThrowIfNull(contactsJson);
        ArgumentNullException.ThrowIfNull(notes);
        ArgumentOutOfRangeException.ThrowIfNegative(patch);
        return Guarded(() =>
        {
            var now = _time.GetUtcNow();
            using var tx = Begin();
            var record = InsertSurfaceRegistration(tx, sessionId, patch, modelSha256, headFromScalpJson, rmsMm, p95Mm, maxMm, contacts, inliers, contactsJson, valid, notes, heightMapJson, now);
            tx.Commit();
            return record;
        });
    }

    private SurfaceRegistrationRecord InsertSurfaceRegistration(DbTransaction tx, string? sessionId, int patch, string modelSha256, string headFromScalpJson,
        double rmsMm, double p95Mm, double maxMm, int contacts, int inliers, string contactsJson, bool valid, string notes, string? heightMapJson, DateTimeOffset now)
    {
        var id = NewId(tx, "r", "surface_registrations", now);
        Execute(tx,
            $"INSERT INTO surface_registrations ({SurfaceColumns}, height_map_json) VALUES (@id, @session, @patch, @now, @model, @t, @rms, @p95, @max, @contacts, @inliers, @json, @valid, @notes, @map)",
            ("@id", id), ("@session", sessionId), ("@patch", patch), ("@now", now.UtcTicks), ("@model", modelSha256), ("@t", headFromScalpJson),
            ("@rms", rmsMm), ("@p95", p95Mm), ("@max", maxMm), ("@contacts", contacts), ("@inliers", inliers), ("@json", contactsJson), ("@valid", valid ? 1 : 0), ("@notes", notes), ("@map", heightMapJson));
        InsertAudit(tx, sessionId, "surface-registered",
            Inv($"surface registration {id}{(patch > 0 ? $" for head position {patch}" : "")}: {(valid ? "valid" : "NOT valid")}, {inliers} of {contacts} contacts, RMS {rmsMm:0.000} mm, max {maxMm:0.000} mm{(notes.Length > 0 ? "; " + notes : "")}"), now);
        return new SurfaceRegistrationRecord(id, sessionId, patch, FromTicks(now.UtcTicks), modelSha256, headFromScalpJson, rmsMm, p95Mm, maxMm, contacts, inliers, contactsJson, valid, notes) { HeightMapJson = heightMapJson };
    }

    /// <summary>The newest valid registration of a session's head position that no re-check withdrew, or null.</summary>
    public SurfaceRegistrationRecord? LatestSurfaceRegistration(string sessionId, int patch)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        return Guarded(() =>
        {
            using var cmd = Command(null,
                $"{SurfaceSelect} WHERE session_id = @s AND patch = @p AND valid = 1 AND NOT EXISTS (SELECT 1 FROM surface_checks c WHERE c.registration_id = r.id AND c.ok = 0) ORDER BY created_at DESC, rowid DESC LIMIT 1",
                ("@s", sessionId), ("@p", patch));
            using var reader = cmd.ExecuteReader();
            return reader.Read() ? ReadSurface(reader) : null;
        });
    }

    /// <summary>The registration with this id, or null.</summary>
    public SurfaceRegistrationRecord? FindSurfaceRegistration(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        return Guarded(() =>
        {
            using var cmd = Command(null, $"{SurfaceSelect} WHERE id = @id", ("@id", id));
            using var reader = cmd.ExecuteReader();
            return reader.Read() ? ReadSurface(reader) : null;
        });
    }

    /// <summary>Every registration of a session (null: those made outside any session), newest first, valid or not.</summary>
    public IReadOnlyList<SurfaceRegistrationRecord> ListSurfaceRegistrations(string? sessionId)
    {
        return Guarded(() =>
        {
            using var cmd = Command(null, $"{SurfaceSelect} WHERE session_id IS NOT DISTINCT FROM @s ORDER BY created_at DESC, rowid DESC", ("@s", sessionId));
            using var reader = cmd.ExecuteReader();
            var list = new List<SurfaceRegistrationRecord>();
            while (reader.Read()) list.Add(ReadSurface(reader));
            return list;
        });
    }

    private static SurfaceRegistrationRecord ReadSurface(DbDataReader r) => new(
        r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetInt32(2), FromTicks(r.GetInt64(3)), r.GetString(4), r.GetString(5),
        r.GetDouble(6), r.GetDouble(7), r.GetDouble(8), r.GetInt32(9), r.GetInt32(10), r.GetString(11), r.GetInt32(12) != 0, r.GetString(13))
    {
        HeightMapJson = r.IsDBNull(14) ? null : r.GetString(14),
        WithdrawnBecause = r.IsDBNull(15) ? null : r.GetString(15),
    };
}
