using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Tests.Integration;
using SmpRobot.Tests.Simulation;

namespace SmpRobot.Tests.Surface;

/// <summary>
/// The periodic re-check of the measured scalp during a session (profile surfaceRecheckEveryDots): a board that
/// slips on the head and a probe wire cut mid-session are each found by the next re-check, which holds the session
/// with the reason, withdraws the registration and places nothing more; probed again, the session goes on.
/// </summary>
[Collection(ControllerCollection.Name)]
public sealed class SurfaceRecheckTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);
    private static readonly string PlanPath = Path.Combine(TestProfiles.RepoRoot, "hardware", "plans", "demo-crown.json");
    private static readonly string ModelPath = Path.Combine(TestProfiles.RepoRoot, "hardware", "plans", "head-model.ply");
    private const int Every = 20;

    private readonly string _profileDirectory = Directory.CreateTempSubdirectory("smp-recheck-profile-").FullName;

    // A fresh scalp per test: the tests move its board.
    private readonly SimulatedScalp _scalp = SimulatedScalp.SyntheticHead(Rotations.FromRotationVector(new Vec3(0.3, 0.2, -0.4) * (Math.PI / 180), new Vec3(-1.2, 1.4, 0.9)));

    private async Task<(ControllerFixture C, Session Session)> StartedAsync(int untilPlaced = Every + 5, int every = Every, double timeScale = 50)
    {
        // sim.json with a re-check every 20 dots (its default is every 150).
        var profileText = await File.ReadAllTextAsync(Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", "sim.json"));
        var profilePath = Path.Combine(_profileDirectory, "sim-recheck.json");
        await File.WriteAllTextAsync(profilePath, "{ \"surfaceRecheckEveryDots\": " + every + "," + profileText.TrimStart()[1..]);
        var simulator = new SimulatedGantry(ControllerFixture.Profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = timeScale, Skin = _scalp });
        var c = await ControllerFixture.StartAsync(simulator, configure: o => o with { ProfilePath = profilePath });
        await c.HomeAsync();
        var session = await c.Sessions.CreateSessionAsync(new CreateSessionRequest
        {
            PlanJson = await File.ReadAllTextAsync(PlanPath),
            HeadModel = ByteString.CopyFrom(await File.ReadAllBytesAsync(ModelPath)),
        }, deadline: DateTime.UtcNow.Add(Timeout));
        var registration = await Surface(c).ProbeSurfaceAsync(new ProbeSurfaceRequest { SessionId = session.Id, Points = 8 }, deadline: DateTime.UtcNow.Add(Timeout));
        Assert.True(registration.Valid, registration.Notes);
        await c.StartHeartbeatAsync();
        await c.Sessions.StartAsync(new SessionRef { SessionId = session.Id });
        // By default past the first re-check, which finds the skin where it was registered.
        await c.WaitForAsync(session.Id, s => s.Dots.Placed >= untilPlaced || ControllerFixture.IsEnded(s), Timeout);
        return (c, session);
    }

    private static SurfaceService.SurfaceServiceClient Surface(ControllerFixture c) => new(c.Channel);

    /// <summary>
    /// The plunges in the motion record from <paramref name="from"/> on: straight-down feed moves with the needle drive on,
    /// right before their dwell at depth (a travel's descent is followed by the zero-length sync dwell instead).
    /// </summary>
    private static List<SimMotion> Plunges(ControllerFixture c, int from = 0)
    {
        var record = c.Simulator.MotionRecord.Skip(from).ToList();
        return record.Zip(record.Skip(1)).Where(p => p.Second.Kind == SimMotionKind.Dwell && p.Second.DurationSeconds > 0.05 && p.First.Kind == SimMotionKind.Feed && p.First.SpindleOn
            && p.First.From.X == p.First.To.X && p.First.From.Y == p.First.To.Y && p.First.To.Z < p.First.From.Z).Select(p => p.First).ToList();
    }

    [Fact]
    public async Task A_board_that_slips_mid_session_is_found_by_the_next_re_check_which_holds_and_withdraws_the_registration_and_probed_again_it_completes()
    {
        var (c, session) = await StartedAsync();
        await using var _ = c;

        // The board slips 0.4 mm outwards on the head: the skin is now 0.4 mm nearer the needle than registered.
        var slipped = RigidTransform.FromYawDegrees(0, new Vec3(0, 0, 0.4)) * _scalp.HeadFromScalp;
        _scalp.HeadFromScalp = slipped;
        var held = await c.WaitForAsync(session.Id, ControllerFixture.IsEnded, Timeout);

        Assert.Equal(SessionState.Paused, held.State);
        Assert.Contains("the scalp moved", held.Reason, StringComparison.Ordinal);
        Assert.Contains("withdrawn", held.Reason, StringComparison.Ordinal);
        Assert.Contains($"smp surface probe {session.Id} --patch 1", held.Reason, StringComparison.Ordinal);
        var ledger = c.Services.GetRequiredService<LedgerStore>();
        var checks = ledger.ListSurfaceChecks(session.Id);
        // Every re-check before the slip passed; the first after it failed, measuring the slip along the normal
        // (near the crown the normal is nearly H's z).
        Assert.True(checks.Count >= 2, $"{checks.Count} re-checks");
        Assert.All(checks.SkipLast(1), k => Assert.True(k.Ok && Math.Abs(k.DeviationMm) <= 0.06, $"{k.DotId}: {k.DeviationMm:0.000} mm {k.Notes}"));
        Assert.False(checks[^1].Ok);
        Assert.InRange(checks[^1].DeviationMm, 0.3, 0.45);
        // A re-check comes after every 20 placed dots, and nothing is placed after the one that failed.
        Assert.Equal(checks.Count * Every, held.Dots.Placed);
        Assert.Equal(held.Dots.Placed, Plunges(c).Count);
        var lastProbe = c.Simulator.MotionRecord.Last(m => m.Kind == SimMotionKind.Probe);
        Assert.DoesNotContain(c.Simulator.MotionRecord.SkipWhile(m => !ReferenceEquals(m, lastProbe)), m => m.SpindleOn);

        // The registration is withdrawn: a resume is refused until the head position is probed again.
        var registrations = await Surface(c).ListSurfaceRegistrationsAsync(new ListSurfaceRegistrationsRequest { SessionId = session.Id });
        Assert.Contains("above the registered surface", Assert.Single(registrations.Registrations).WithdrawnBecause, StringComparison.Ordinal);
        Assert.True((await Surface(c).SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = session.Id })).Needed);
        var refused = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);

        var again = await Surface(c).ProbeSurfaceAsync(new ProbeSurfaceRequest { SessionId = session.Id, Points = 8 }, deadline: DateTime.UtcNow.Add(Timeout));
        Assert.True(again.Valid, again.Notes);
        var resumedAt = c.Simulator.MotionRecord.Count;
        await c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id });
        var done = await c.WaitForAsync(session.Id, ControllerFixture.IsFinished, Timeout);

        Assert.Equal(SessionState.Completed, done.State);
        var plan = Plan.Parser.ParseJson(await File.ReadAllTextAsync(PlanPath));
        Assert.Equal(plan.Dots.Count, Plunges(c).Count); // each dot once
        // After the new registration every dot goes its depth below the skin where it now is.
        var after = Plunges(c, resumedAt);
        Assert.NotEmpty(after);
        var depths = plan.Dots.Select(d => d.DepthMm).Distinct().ToList();
        Assert.All(after, m =>
        {
            var skin = _scalp.SkinAt(m.To.X, m.To.Y, 0)!.Value;
            var depth = Vec3.Dot(skin.Point - m.To, skin.Normal);
            Assert.True(depths.Any(d => Math.Abs(d - depth) <= 0.03), $"plunge to {m.To}: {depth:0.000} mm below the skin");
        });
    }

    [Fact]
    public async Task The_count_to_the_next_re_check_goes_on_across_a_pause_and_a_resume()
    {
        var (c, session) = await StartedAsync(untilPlaced: 12);
        await using var _ = c;

        await c.Sessions.PauseAsync(new SessionRef { SessionId = session.Id });
        // Paused after about 12 dots (a slow machine may go further; anywhere but at a multiple of 20, a count that
        // started again at the resume would put the checks elsewhere).
        await c.WaitForAsync(session.Id, s => s.State == SessionState.Paused, Timeout);
        await c.Sessions.ResumeAsync(new SessionRef { SessionId = session.Id });
        await c.WaitForAsync(session.Id, s => s.Dots.Placed >= (2 * Every) + 2 || ControllerFixture.IsEnded(s), Timeout);
        await c.Sessions.AbortAsync(new SessionRef { SessionId = session.Id });

        // The first re-check came before the 21st dot of the registration, not 20 dots after the resume.
        var ledger = c.Services.GetRequiredService<LedgerStore>();
        var order = ledger.LoadDots(session.Id).Select(d => d.Dot.DotId).ToList();
        var checks = ledger.ListSurfaceChecks(session.Id);
        Assert.True(checks.Count >= 2, $"{checks.Count} re-checks");
        Assert.Equal([Every, 2 * Every], checks.Take(2).Select(k => order.IndexOf(k.DotId)));
        Assert.All(checks, k => Assert.True(k.Ok, k.Notes));
    }

    [Fact]
    public async Task A_probe_wire_cut_mid_session_holds_at_the_next_re_check_with_the_needle_back_up_and_nothing_more_placed()
    {
        var (c, session) = await StartedAsync();
        await using var _ = c;

        c.Simulator.CutProbeWire();
        var held = await c.WaitForAsync(session.Id, ControllerFixture.IsEnded, Timeout);

        // Held, not faulted: the probe's ALARM:5 is its refusal, and the gantry is unlocked and idle.
        Assert.Equal(SessionState.Paused, held.State);
        Assert.Contains("ALARM:5", held.Reason, StringComparison.Ordinal);
        Assert.Contains("probe wire may be cut", held.Reason, StringComparison.Ordinal);
        Assert.Contains("withdrawn", held.Reason, StringComparison.Ordinal);
        Assert.Equal("Idle", c.Simulator.State);
        var checks = c.Services.GetRequiredService<LedgerStore>().ListSurfaceChecks(session.Id);
        Assert.False(checks[^1].Ok);
        Assert.True(double.IsNaN(checks[^1].DeviationMm));
        Assert.Equal(checks.Count * Every, held.Dots.Placed);
        Assert.Equal(held.Dots.Placed, Plunges(c).Count);
        Assert.Equal(0, held.Dots.InDoubt);
        // The blind probe went its bounded distance (2 mm approach + 1.5 mm past the expected skin), no further, and the needle is back at its start.
        var blind = c.Simulator.MotionRecord.Last(m => m.Kind == SimMotionKind.Probe && m.Line.StartsWith("G38.2", StringComparison.Ordinal));
        Assert.Equal(3.5, blind.From.Z - blind.To.Z, 3);
        Assert.Equal(blind.From.Z, c.Simulator.Position.Z, 3);
        Assert.DoesNotContain(c.Simulator.MotionRecord.SkipWhile(m => !ReferenceEquals(m, blind)), m => m.SpindleOn);
        Assert.True((await Surface(c).SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = session.Id })).Needed);
    }

    [Fact]
    public async Task A_pause_while_a_re_check_probe_runs_stops_it_at_once_and_lifts_the_needle_and_the_registration_stands()
    {
        // Real time, a re-check every 3 dots, and the wire cut: the re-check's probe runs its whole 3.5 mm at 1 mm/s,
        // long enough to be caught in the middle.
        var (c, session) = await StartedAsync(untilPlaced: 1, every: 3, timeScale: 1);
        await using var _ = c;
        c.Simulator.CutProbeWire();
        // The re-check's probe after the third dot has started (a motion's start wakes the waiter): it has 3.5 s to run.
        var ledger = c.Services.GetRequiredService<LedgerStore>();
        await c.Simulator.UntilAsync(g => g.ExecutingLine is { } line && line.StartsWith("G38.2", StringComparison.Ordinal) && ledger.Tally(session.Id).Placed >= 3,
            "a re-check probe running", Timeout);
        await c.Sessions.PauseAsync(new SessionRef { SessionId = session.Id });
        var paused = await c.WaitForAsync(session.Id, ControllerFixture.IsEnded, Timeout);

        Assert.Equal(SessionState.Paused, paused.State);
        Assert.Equal(3, paused.Dots.Placed);
        Assert.Equal(0, paused.Dots.InDoubt);
        // The probe was cut short (not run to its end) and the needle is back above the skin, its drive off.
        var probe = c.Simulator.MotionRecord.Last(m => m.Kind == SimMotionKind.Probe && m.Line.StartsWith("G38.2", StringComparison.Ordinal));
        Assert.False(probe.Completed);
        Assert.True(probe.From.Z - probe.To.Z < 3.4, $"the probe ran {probe.From.Z - probe.To.Z:0.000} mm");
        var at = c.Simulator.Position;
        Assert.True(at.Z - _scalp.SkinZMm(at.X, at.Y, 0)!.Value > 1, $"the needle is at {at}, not back up");
        Assert.DoesNotContain(c.Simulator.MotionRecord.SkipWhile(m => !ReferenceEquals(m, probe)), m => m.SpindleOn);
        // Nothing was learnt of the skin: no failed check, the registration stands, and the audit says why it stopped.
        Assert.DoesNotContain(ledger.ListSurfaceChecks(session.Id), k => !k.Ok);
        Assert.False((await Surface(c).SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = session.Id })).Needed);
        Assert.Contains(ledger.ReadAudit(session.Id), a => a.Kind == "surface-check-stopped");
    }

    public void Dispose() => Directory.Delete(_profileDirectory, recursive: true);
}
