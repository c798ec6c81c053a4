using Microsoft.Data.Sqlite;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Tests.CalibrationIntegration;

/// <summary>A ledger written by the first controller (schema version 1) is migrated in place to the current version (2: calibrations, 3: hold tallies, 4-5: surface registrations and re-checks, 6: users and the call audit, 7: treatments, 8: the controller of each audit row and session run), keeping its sessions.</summary>
public sealed class LedgerMigrationTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("smp-migrate-").FullName;

    [Fact]
    public void A_version_1_ledger_gains_calibrations_and_keeps_its_sessions()
    {
        var path = Path.Combine(_directory, "smp.db");
        using (var c = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            // The version 1 schema as the first controller wrote it (sessions only; dots and audit are unchanged by version 2).
            cmd.CommandText = """
                PRAGMA journal_mode=WAL;
                CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at INTEGER NOT NULL);
                INSERT INTO schema_version VALUES (1, 0);
                CREATE TABLE sessions (id TEXT PRIMARY KEY, plan_name TEXT NOT NULL, plan_json TEXT NOT NULL, profile_name TEXT NOT NULL, phase INTEGER NOT NULL,
                    reason TEXT NOT NULL, elapsed_s REAL NOT NULL, kinematic_s REAL NOT NULL, created_at INTEGER NOT NULL, started_at INTEGER NULL, ended_at INTEGER NULL, dot_count INTEGER NOT NULL);
                CREATE TABLE dots (session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE, seq INTEGER NOT NULL, dot_id TEXT NOT NULL, x_mm REAL NOT NULL, y_mm REAL NOT NULL,
                    z_mm REAL NOT NULL, depth_mm REAL NOT NULL, dwell_ms REAL NOT NULL, pigment_id TEXT NOT NULL, state INTEGER NOT NULL, target_x_mm REAL NULL, target_y_mm REAL NULL,
                    target_z_mm REAL NULL, note TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (session_id, seq), UNIQUE (session_id, dot_id)) WITHOUT ROWID;
                CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, session_id TEXT NULL REFERENCES sessions (id) ON DELETE CASCADE, kind TEXT NOT NULL, message TEXT NOT NULL);
                INSERT INTO sessions VALUES ('s-old', 'old plan', '{}', 'sim', 5, '', 12.5, 10.0, 638000000000000000, NULL, NULL, 0);
                """;
            cmd.ExecuteNonQuery();
        }

        using (var store = new LedgerStore(path, TimeProvider.System))
        {
            var old = store.FindSession("s-old")!;
            Assert.Equal(("old plan", SessionPhase.Completed, 12.5), (old.PlanName, old.Phase, old.ElapsedSeconds));
            Assert.Null(old.CalibrationId);
            Assert.Null(old.OverrideReason);
            Assert.Equal(HoldTally.None, old.Holds);
            var saved = store.SaveCalibration(CalibrationKind.Gantry, "synthetic@1280x720", "sim", "test", "{}", "{}", 0.01, double.NaN, 0.02, 20, "", valid: true);
            store.RecordSessionCalibration("s-old", saved.Id, null, null);
            Assert.Equal(saved.Id, store.FindSession("s-old")!.CalibrationId);
            Assert.True(double.IsNaN(store.FindCalibration(saved.Id)!.P95Error));
        }

        using var check = new SqliteConnection($"Data Source={path};Pooling=False");
        check.Open();
        using var versions = check.CreateCommand();
        versions.CommandText = "SELECT MAX(version) FROM schema_version";
        Assert.Equal((long)LedgerStore.SchemaVersion, versions.ExecuteScalar());
        Assert.Equal(8, LedgerStore.SchemaVersion);
        versions.CommandText = "SELECT group_concat(version) FROM (SELECT version FROM schema_version ORDER BY version)";
        Assert.Equal("1,2,3,4,5,6,7,8", versions.ExecuteScalar());
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
