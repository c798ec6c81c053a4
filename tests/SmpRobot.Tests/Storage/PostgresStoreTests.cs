using Microsoft.Extensions.Time.Testing;
using Npgsql;
using SmpRobot.Controller.Security;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Tests.EndToEnd;

namespace SmpRobot.Tests.Storage;

/// <summary>What only the shared PostgreSQL store has: other chairs, a server that goes away, the address on the command line.</summary>
public sealed class PostgresStoreTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 5, 9, 0, 0, TimeSpan.Zero));

    private static List<PlannedDot> Dots(int count) =>
        Enumerable.Range(0, count).Select(i => new PlannedDot(i, $"d{i + 1:D5}", i, 0, 1, 1, 200, "p1")).ToList();

    [Fact]
    public void The_call_audit_refuses_update_delete_and_truncate()
    {
        var location = PostgresCluster.Shared.CreateDatabase();
        using (var store = new LedgerStore(location, _time))
        {
            store.AppendCallAudit(_time.GetUtcNow(), "ana", "admin", "/smprobot.v1.SessionService/Start", null, "{}", "OK");
        }
        using var c = PostgresCluster.Connect(location);
        foreach (var sql in new[] { "UPDATE call_audit SET result = 'forged'", "DELETE FROM call_audit", "TRUNCATE call_audit" })
        {
            using var cmd = new NpgsqlCommand(sql, c);
            var e = Assert.Throws<PostgresException>(() => cmd.ExecuteNonQuery());
            Assert.Contains("append-only", e.MessageText, StringComparison.Ordinal);
        }
        using var count = new NpgsqlCommand("SELECT COUNT(*) FROM call_audit WHERE result = 'OK'", c);
        Assert.Equal(1L, count.ExecuteScalar());
    }

    [Fact]
    public async Task A_user_added_or_revoked_by_another_process_is_seen_by_the_running_directory()
    {
        var location = PostgresCluster.Shared.CreateDatabase();
        using var store = new LedgerStore(location, TimeProvider.System);
        // The directory's poll runs when this clock is advanced: one poll after each change, no waiting on the wall clock.
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        using var directory = new UserDirectory(store, clock);
        Assert.Equal(0, directory.Count);
        // Another process on another chair: smp-controller user add --store postgres://…
        await using (var add = RealProcess.Start("smp-controller", "user", "add", "ben", "--role", "operator", "--store", location.Display))
        {
            Assert.Equal(0, await add.ExitCodeAsync(TimeSpan.FromSeconds(60)));
            var token = add.Stdout.Trim();
            Assert.Null(directory.Authenticate(token)); // not seen yet: no poll has run
            clock.Advance(UserDirectory.PollInterval);
            Assert.Equal("ben", directory.Authenticate(token)?.Name);
            using var other = new LedgerStore(location, TimeProvider.System);
            Assert.True(other.RevokeUser("ben"));
            clock.Advance(UserDirectory.PollInterval);
            Assert.Null(directory.Authenticate(token));
        }
    }

    [Fact]
    public void Two_chairs_share_sessions_but_only_one_runs_a_session_and_a_restart_leaves_the_other_chairs_session_alone()
    {
        var location = PostgresCluster.Shared.CreateDatabase();
        using var chairA = new LedgerStore(location, _time);
        using var chairB = new LedgerStore(location, _time);
        var s = chairA.CreateSession("p", "{}", "sim", Dots(3)).Id;
        Assert.Equal(s, chairB.FindSession(s)!.Id); // a client can come back to any chair
        chairA.UpdateSession(s, SessionPhase.Running, "", 0, 0, _time.GetUtcNow(), null);
        var refused = Assert.Throws<InvalidOperationException>(() => chairB.UpdateSession(s, SessionPhase.Running, "", 0, 0, _time.GetUtcNow(), null));
        Assert.Contains("another controller", refused.Message, StringComparison.Ordinal);
        chairA.MarkCommanded(s, 0, new Vec3(1, 2, 3));
        // Chair B's controller restarts: chair A's running session and its commanded dot are not B's to recover.
        Assert.Empty(chairB.RecoverAfterRestart("chair B restarted"));
        Assert.Equal(DotLedgerState.Commanded, chairB.LoadDots(s)[0].State);
        chairA.MarkPlaced(s, 0);
        chairA.UpdateSession(s, SessionPhase.Paused, "held", 1, 1, _time.GetUtcNow(), null);
        chairB.UpdateSession(s, SessionPhase.Running, "", 1, 1, _time.GetUtcNow(), null); // now B may run it
        Assert.Equal(new DotTally(3, 2, 0, 1, 0, 0), chairB.Tally(s));
    }

    [Fact]
    public void A_run_claim_whose_update_fails_is_given_back_and_a_claim_of_a_run_under_way_is_kept()
    {
        var location = PostgresCluster.Shared.CreateDatabase();
        using var chairA = new LedgerStore(location, _time);
        var s = chairA.CreateSession("p", "{}", "sim", Dots(2)).Id;
        using var admin = PostgresCluster.Connect(location);
        void Sql(string sql)
        {
            using var cmd = new NpgsqlCommand(sql, admin);
            cmd.ExecuteNonQuery();
        }
        // The server refuses the phase change after the claim was taken (a trigger stands for any refused write).
        Sql("""
            CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
            CREATE TRIGGER refuse_update BEFORE UPDATE ON sessions FOR EACH ROW EXECUTE FUNCTION refuse_update();
            """);
        var refused = Assert.Throws<PostgresException>(() => chairA.UpdateSession(s, SessionPhase.Running, "", 0, 0, _time.GetUtcNow(), null));
        Assert.Contains("refused by the test", refused.MessageText, StringComparison.Ordinal);
        // An unknown session fails after the claim too.
        Assert.Throws<KeyNotFoundException>(() => chairA.UpdateSession("s-nope", SessionPhase.Running, "", 0, 0, _time.GetUtcNow(), null));
        Sql("DROP TRIGGER refuse_update ON sessions");

        // Chair A holds no lock for the run that never began: no advisory lock at all, and chair B may run the session.
        using (var locks = new NpgsqlCommand("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", admin))
        {
            Assert.Equal(0L, locks.ExecuteScalar());
        }
        var chairAPid = ChairPid(admin);
        using var chairB = new LedgerStore(location, _time);
        chairB.UpdateSession(s, SessionPhase.Running, "", 0, 0, _time.GetUtcNow(), null);

        // Nor does chair A take it back when its connection is replaced (it reclaims the runs it still has on reconnecting).
        Sql($"SELECT pg_terminate_backend({chairAPid})");
        try
        {
            chairA.FindSession(s);
        }
        catch (StoreUnavailableException)
        {
            // The call that met the cut connection (when it was not idle long enough to be checked first).
        }
        Assert.Equal(SessionPhase.Running, chairA.FindSession(s)!.Phase);

        // A change that fails while a run is under way leaves its claim: chair B still runs the session.
        Sql("CREATE TRIGGER refuse_update BEFORE UPDATE ON sessions FOR EACH ROW EXECUTE FUNCTION refuse_update()");
        Assert.Throws<PostgresException>(() => chairB.UpdateSession(s, SessionPhase.Pausing, "pausing", 0, 0, _time.GetUtcNow(), null));
        Sql("DROP TRIGGER refuse_update ON sessions");
        var taken = Assert.Throws<InvalidOperationException>(() => chairA.UpdateSession(s, SessionPhase.Running, "", 0, 0, _time.GetUtcNow(), null));
        Assert.Contains("another controller", taken.Message, StringComparison.Ordinal);
    }

    /// <summary>The backend of the one other connection to this database (a chair's store opened just before).</summary>
    private static int ChairPid(NpgsqlConnection admin)
    {
        using var cmd = new NpgsqlCommand("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()", admin);
        using var r = cmd.ExecuteReader();
        Assert.True(r.Read());
        var pid = r.GetInt32(0);
        Assert.False(r.Read());
        return pid;
    }

    [Fact]
    public void A_server_that_goes_away_gives_one_typed_refusal_and_the_store_reconnects_when_it_is_back()
    {
        using var cluster = PostgresCluster.StartPrivate();
        var location = cluster.CreateDatabase();
        using var store = new LedgerStore(location, _time);
        var s = store.CreateSession("p", "{}", "sim", Dots(2)).Id;
        cluster.Stop();
        var e = Assert.Throws<StoreUnavailableException>(() => store.MarkCommanded(s, 0, new Vec3(1, 1, 1)));
        Assert.StartsWith("record store unreachable: postgres://postgres@127.0.0.1:" + cluster.Port, e.Message, StringComparison.Ordinal);
        Assert.Throws<StoreUnavailableException>(() => store.ListSessions());
        cluster.Start();
        Assert.Equal(DotLedgerState.Pending, store.LoadDots(s)[0].State); // nothing of the failed call landed
        store.MarkCommanded(s, 0, new Vec3(1, 1, 1));
        Assert.True(store.WithdrawIntent(s, 0, "test"));
        Assert.False(store.WithdrawIntent(s, 0, "test"));
        Assert.Equal(new DotTally(2, 2, 0, 0, 0, 0), store.Tally(s));
    }

    [Fact]
    public void The_store_address_converts_to_npgsql_settings_and_is_shown_without_its_password()
    {
        var l = StoreLocation.Parse("postgres://smp:s%40cret@db.clinic.lan:6543/smp_ledger?sslmode=verify-full");
        Assert.True(l.IsPostgres);
        Assert.Equal("postgres://smp@db.clinic.lan:6543/smp_ledger", l.Display);
        var b = new NpgsqlConnectionStringBuilder(l.ConnectionString);
        Assert.Equal(("db.clinic.lan", 6543, "smp_ledger", "smp", "s@cret", SslMode.VerifyFull), (b.Host, b.Port, b.Database, b.Username, b.Password, b.SslMode));
        Assert.Equal(5432, new NpgsqlConnectionStringBuilder(StoreLocation.Parse("postgresql://smp@db/smp").ConnectionString).Port);
        Assert.False(StoreLocation.Parse("sqlite:/tmp/x.db").IsPostgres);
        Assert.Throws<FormatException>(() => StoreLocation.Parse("mysql://x@y/z"));
        Assert.Throws<FormatException>(() => StoreLocation.Parse("postgres://x@y"));
        var bad = Assert.Throws<FormatException>(() => StoreLocation.Parse("postgres://u:topsecret@h/db?password=topsecret"));
        Assert.DoesNotContain("topsecret", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_server_at_start_is_a_clear_refusal_not_a_stack_trace()
    {
        var port = RealProcess.FreePort();
        var data = Directory.CreateTempSubdirectory("smp-pg-refused-").FullName;
        try
        {
            await using var controller = RealProcess.Start("smp-controller", "--gantry", "sim", "--camera", "none", "--insecure-loopback", "--urls", "http://127.0.0.1:" + RealProcess.FreePort(),
                "--data", data, "--store", $"postgres://smp:hunter2@127.0.0.1:{port}/smp");
            Assert.Equal(3, await controller.ExitCodeAsync(TimeSpan.FromSeconds(60)));
            Assert.Contains($"smp-controller: not started: record store unreachable: postgres://smp@127.0.0.1:{port}/smp", controller.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("hunter2", controller.Stderr + controller.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", controller.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            // The process has ended (or was killed by the disposal above): its data folder is this test's to remove.
            Directory.Delete(data, recursive: true);
        }
    }
}
