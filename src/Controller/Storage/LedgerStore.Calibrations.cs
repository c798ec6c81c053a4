using System.Globalization;
using System.Security.Cryptography;
using System.Data;
using System.Data.Common;

namespace SmpRobot.Controller.Storage;

/// <summary>What a stored calibration calibrates.</summary>
public enum CalibrationKind
{
    /// <summary>Camera matrix and lens distortion.</summary>
    Intrinsics = 1,
    /// <summary>T_GC, the camera-to-gantry mapping (and the needle tip's offset to the head marker).</summary>
    Gantry = 2,
}

/// <summary>
/// A stored calibration (versioned: never changed once stored, except for being marked invalid).
/// Residual figures are px for intrinsics and mm for gantry calibrations; NaN when not measured.
/// </summary>
/// <param name="Id">"c-20261123-210512-3f9a".</param>
/// <param name="Kind">Intrinsics or gantry.</param>
/// <param name="Camera">The camera's identity (see Calibration.CameraIdentity).</param>
/// <param name="ProfileName">Machine profile it was made on.</param>
/// <param name="CreatedAt">UTC.</param>
/// <param name="Method">How it was made, e.g. "charuco-views" or "kabsch-ransac+tip-touch".</param>
/// <param name="DataJson">The result: T_GC and tip offset, or camera matrix and distortion (JSON).</param>
/// <param name="StatsJson">Residual statistics and per-point details (JSON).</param>
/// <param name="RmsError">RMS residual (validation RMS for gantry; reprojection RMS px for intrinsics).</param>
/// <param name="P95Error">95th percentile of the validation residuals (gantry), mm.</param>
/// <param name="MaxError">Largest validation residual (gantry), mm; largest view RMS (intrinsics), px.</param>
/// <param name="PointCount">Stops (gantry) or views (intrinsics) used.</param>
/// <param name="Notes">Warnings and the engineer's notes.</param>
/// <param name="Valid">False when it did not meet its acceptance limits or was withdrawn.</param>
public sealed record CalibrationRecord(string Id, CalibrationKind Kind, string Camera, string ProfileName, DateTimeOffset CreatedAt, string Method, string DataJson, string StatsJson,
    double RmsError, double P95Error, double MaxError, int PointCount, string Notes, bool Valid);

public sealed partial class LedgerStore
{
    private const string CalibrationColumns = "id, kind, camera, profile_name, created_at, method, data_json, stats_json, rms, p95, max, point_count, notes, valid";

    /// <summary>Schema version 2: calibrations, and the calibration each session ran with.</summary>
    private void MigrateToVersion2(DbTransaction tx) => Ddl(tx, """
        CREATE TABLE calibrations (
            id TEXT PRIMARY KEY,
            kind INTEGER NOT NULL CHECK (kind IN (1, 2)),
            camera TEXT NOT NULL,
            profile_name TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            method TEXT NOT NULL,
            data_json TEXT NOT NULL,
            stats_json TEXT NOT NULL,
            rms REAL NULL,
            p95 REAL NULL,
            max REAL NULL,
            point_count INTEGER NOT NULL,
            notes TEXT NOT NULL,
            valid INTEGER NOT NULL);
        CREATE INDEX calibrations_latest ON calibrations (kind, camera, profile_name, created_at);
        ALTER TABLE sessions ADD COLUMN calibration_id TEXT NULL REFERENCES calibrations (id);
        ALTER TABLE sessions ADD COLUMN override_by TEXT NULL;
        ALTER TABLE sessions ADD COLUMN override_reason TEXT NULL;
        """);

    /// <summary>Stores a new calibration (and an audit entry) in one transaction; returns it with its new id.</summary>
    public CalibrationRecord SaveCalibration(CalibrationKind kind, string camera, string profileName, string method, string dataJson, string statsJson,
        double rmsError, double p95Error, double maxError, int pointCount, string notes, bool valid)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(camera);
        ArgumentException.ThrowIfNullOrWhiteSpace(profileName);
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(dataJson);
        ArgumentNullException.ThrowIfNull(statsJson);
        ArgumentNullException.ThrowIfNull(notes);
        if (!Enum.IsDefined(kind)) throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown calibration kind");
        return Guarded(() =>
        {
            var now = _time.GetUtcNow();
            using var tx = Begin();
            var id = NewId(tx, "c", "calibrations", now);
            Execute(tx,
                $"INSERT INTO calibrations ({CalibrationColumns}) VALUES (@id, @kind, @camera, @profile, @now, @method, @data, @stats, @rms, @p95, @max, @points, @notes, @valid)",
                ("@id", id), ("@kind", (int)kind), ("@camera", camera), ("@profile", profileName), ("@now", now.UtcTicks), ("@method", method), ("@data", dataJson),
                ("@stats", statsJson), ("@rms", Finite(rmsError)), ("@p95", Finite(p95Error)), ("@max", Finite(maxError)), ("@points", pointCount), ("@notes", notes), ("@valid", valid ? 1 : 0));
            InsertAudit(tx, null, "calibration-saved",
                Inv($"{(kind == CalibrationKind.Gantry ? "gantry" : "intrinsics")} calibration {id} for camera {camera} on profile {profileName}: {(valid ? "valid" : "NOT valid")}, {pointCount} points, RMS {rmsError:0.0000}"), now);
            tx.Commit();
            return new CalibrationRecord(id, kind, camera, profileName, FromTicks(now.UtcTicks), method, dataJson, statsJson, rmsError, p95Error, maxError, pointCount, notes, valid);
        });
    }

    /// <summary>The calibration with this id, or null.</summary>
    public CalibrationRecord? FindCalibration(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        return Guarded(() =>
        {
            using var cmd = Command(null, $"SELECT {CalibrationColumns} FROM calibrations WHERE id = @id", ("@id", id));
            using var reader = cmd.ExecuteReader();
            return reader.Read() ? ReadCalibration(reader) : null;
        });
    }

    /// <summary>Calibrations newest first, optionally only of one kind, camera and/or profile.</summary>
    public IReadOnlyList<CalibrationRecord> ListCalibrations(CalibrationKind? kind = null, string? camera = null, string? profileName = null, int limit = 100)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        return Guarded(() =>
        {
            using var cmd = Command(null,
                $"SELECT {CalibrationColumns} FROM calibrations WHERE (@kind IS NULL OR kind = @kind) AND (@camera IS NULL OR camera = @camera) AND (@profile IS NULL OR profile_name = @profile) " +
                "ORDER BY created_at DESC, rowid DESC LIMIT @limit",
                ("@kind", kind is null ? null : (int)kind), ("@camera", camera), ("@profile", profileName), ("@limit", limit));
            // Typed, so that PostgreSQL knows what a null one is ("@kind IS NULL" alone cannot tell it).
            cmd.Parameters["@kind"].DbType = DbType.Int32;
            cmd.Parameters["@camera"].DbType = DbType.String;
            cmd.Parameters["@profile"].DbType = DbType.String;
            using var reader = cmd.ExecuteReader();
            var list = new List<CalibrationRecord>();
            while (reader.Read()) list.Add(ReadCalibration(reader));
            return list;
        });
    }

    /// <summary>The newest valid calibration of <paramref name="kind"/> for the camera and profile, or null.</summary>
    public CalibrationRecord? LatestValidCalibration(CalibrationKind kind, string camera, string profileName)
    {
        return Guarded(() =>
        {
            using var cmd = Command(null,
                $"SELECT {CalibrationColumns} FROM calibrations WHERE kind = @kind AND camera = @camera AND profile_name = @profile AND valid = 1 ORDER BY created_at DESC, rowid DESC LIMIT 1",
                ("@kind", (int)kind), ("@camera", camera), ("@profile", profileName));
            using var reader = cmd.ExecuteReader();
            return reader.Read() ? ReadCalibration(reader) : null;
        });
    }

    /// <summary>
    /// Records on a session which calibration it (re)started with, or that it was started without one
    /// by <paramref name="overrideBy"/> because <paramref name="overrideReason"/> (both null otherwise).
    /// </summary>
    public void RecordSessionCalibration(string sessionId, string? calibrationId, string? overrideBy, string? overrideReason)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        Guarded(() =>
        {
            using var tx = Begin();
            var changed = Execute(tx, "UPDATE sessions SET calibration_id = @c, override_by = @by, override_reason = @why WHERE id = @id",
                ("@c", calibrationId), ("@by", overrideBy), ("@why", overrideReason), ("@id", sessionId));
            if (changed == 0) throw UnknownSession(sessionId);
            tx.Commit();
        });
    }

    private static double? Finite(double value) => double.IsFinite(value) ? value : null;

    private static CalibrationRecord ReadCalibration(DbDataReader r) => new(
        r.GetString(0),
        (CalibrationKind)r.GetInt32(1),
        r.GetString(2),
        r.GetString(3),
        FromTicks(r.GetInt64(4)),
        r.GetString(5),
        r.GetString(6),
        r.GetString(7),
        r.IsDBNull(8) ? double.NaN : r.GetDouble(8),
        r.IsDBNull(9) ? double.NaN : r.GetDouble(9),
        r.IsDBNull(10) ? double.NaN : r.GetDouble(10),
        r.GetInt32(11),
        r.GetString(12),
        r.GetInt32(13) != 0);
}
