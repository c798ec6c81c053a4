using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Geometry;
using SmpRobot.Tests.Integration;

namespace SmpRobot.Tests.Surface;

/// <summary>
/// The surface service over gRPC, as smp uses it: a session created from the bundled demo plan with its head model,
/// probed and registered in its head position on the simulated scalp; and the refusals.
/// </summary>
[Collection(ControllerCollection.Name)]
public sealed class SurfaceServiceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private static readonly string PlanPath = Path.Combine(TestProfiles.RepoRoot, "hardware", "plans", "demo-crown.json");
    private static readonly string ModelPath = Path.Combine(TestProfiles.RepoRoot, "hardware", "plans", "head-model.ply");

    private static readonly SimulatedScalp Scalp =
        // The board sits 2 mm and about half a degree off where the design assumed it. (A degree or more tilts the
        // demo plan's steepest dots past the profile's 15°: the run then holds at such a dot, saying so.)
        SimulatedScalp.SyntheticHead(Rotations.FromRotationVector(new Vec3(0.3, 0.2, -0.4) * (Math.PI / 180), new Vec3(-1.2, 1.4, 0.9)));

    private static async Task<ControllerFixture> StartAsync(double timeScale = 50)
    {
        var simulator = new SimulatedGantry(ControllerFixture.Profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = timeScale, Skin = Scalp });
        var c = await ControllerFixture.StartAsync(simulator);
        await c.HomeAsync();
        return c;
    }

    private static SurfaceService.SurfaceServiceClient Surface(ControllerFixture c) => new(c.Channel);

    private static async Task<Session> CreateAsync(ControllerFixture c, byte[]? model) => await c.Sessions.CreateSessionAsync(new CreateSessionRequest
    {
        PlanJson = await File.ReadAllTextAsync(PlanPath),
        HeadModel = model is null ? ByteString.Empty : ByteString.CopyFrom(model),
    }, deadline: DateTime.UtcNow.Add(Timeout));

    [Fact]
    public async Task A_session_created_with_its_head_model_is_probed_in_its_head_position_and_registered()
    {
        await using var c = await StartAsync();
        var session = await CreateAsync(c, await File.ReadAllBytesAsync(ModelPath));

        var registration = await Surface(c).ProbeSurfaceAsync(new ProbeSurfaceRequest { SessionId = session.Id, Points = 12 }, deadline: DateTime.UtcNow.Add(Timeout));

        Assert.True(registration.Valid, registration.Notes);
        Assert.Equal(1u, registration.Patch);
        Assert.Equal(12u, registration.Contacts);
        Assert.Equal(12, registration.ContactPoints.Count);
        Assert.InRange(registration.RmsMm, 0, 0.05);
        // The board's offset is found: T_HS is not the plan's nominal one.
        Assert.True(Math.Abs(registration.HeadFromScalp.TxMm) > 0.5 || Math.Abs(registration.HeadFromScalp.TyMm) > 0.5, registration.HeadFromScalp.ToString());
        var listed = await Surface(c).ListSurfaceRegistrationsAsync(new ListSurfaceRegistrationsRequest { SessionId = session.Id });
        var stored = Assert.Single(listed.Registrations);
        Assert.Equal(registration.Id, stored.Id);
        Assert.Equal(registration.HeadFromScalp.TxMm, stored.HeadFromScalp.TxMm, 3);
        Assert.Equal("Idle", c.Simulator.State);
    }

    [Fact]
    public async Task Once_registered_every_dot_goes_its_depth_below_the_measured_skin_not_below_the_plans_nominal_one()
    {
        await using var c = await StartAsync(timeScale: 100);
        var session = await CreateAsync(c, await File.ReadAllBytesAsync(ModelPath));
        var registration = await Surface(c).ProbeSurfaceAsync(new ProbeSurfaceRequest { SessionId = session.Id, Points = 12 }, deadline: DateTime.UtcNow.Add(Timeout));
        Assert.True(registration.Valid, registration.Notes);
        var probed = c.Simulator.MotionRecord.Count;

        await c.StartHeartbeatAsync();
        await c.Sessions.StartAsync(new SessionRef { SessionId = session.Id });
        var done = await c.WaitForAsync(session.Id, ControllerFixture.IsFinished, Timeout);
        Assert.Equal(SessionState.Completed, done.State);

        // Each plunge: a straight-down feed move with the needle drive on, right before its dwell at depth (a travel's
        // descent is followed by the zero-length sync dwell instead).
        var record = c.Simulator.MotionRecord.Skip(probed).ToList();
        var bottoms = record.Zip(record.Skip(1)).Where(p => p.Second.Kind == SimMotionKind.Dwell && p.Second.DurationSeconds > 0.05 && p.First.Kind == SimMotionKind.Feed && p.First.SpindleOn
            && p.First.From.X == p.First.To.X && p.First.From.Y == p.First.To.Y && p.First.To.Z < p.First.From.Z).Select(p => p.First.To).ToList();
        var plan = Plan.Parser.ParseJson(await File.ReadAllTextAsync(PlanPath));
        Assert.Equal(plan.Dots.Count, bottoms.Count);
        // The plan's depths are 0.9 mm (crown) and 0.8 mm (its finer dots), along the skin normal: the vertical plunge is
        // longer by 1/cos(tilt). Every plunge ends one of them below the real skin, along its real normal, within 0.03 mm.
        var depthBelowSkin = bottoms.Select(b => Scalp.SkinAt(b.X, b.Y, 0)!.Value is var skin ? Vec3.Dot(skin.Point - b, skin.Normal) : double.NaN).ToList();
        var vertical = bottoms.Select(b => Scalp.SkinZMm(b.X, b.Y, 0)!.Value - b.Z).ToList();
        Assert.True(vertical.Zip(depthBelowSkin).Max(p => p.First - p.Second) > 0.01, "no dot met the skin at an angle: the tilt compensation is not tested");
        var planned = plan.Dots.GroupBy(d => d.DepthMm).ToDictionary(g => g.Key, g => g.Count());
        foreach (var (depth, count) in planned)
        {
            Assert.Equal(count, depthBelowSkin.Count(d => Math.Abs(d - depth) <= 0.03));
        }
        // The plan's nominal skin is not where the skin is: its depth points lie elsewhere, by more than the depth tolerance.
        var nominal = MotionTruth.DepthTargets(plan, ControllerFixture.Profile).Values.ToList();
        Assert.True(bottoms.Count(b => nominal.Min(n => n.DistanceTo(b)) > 0.3) > bottoms.Count / 2, "the registration changed nothing: the test would prove nothing");
    }

    [Fact]
    public async Task A_plan_without_a_head_model_is_probed_as_a_height_map_and_every_dot_goes_its_depth_below_the_measured_skin()
    {
        await using var c = await StartAsync(timeScale: 100);
        // A demo plan (a shallow 0.4 mm dome over the top of H, straight down, no head model): the real skin is the
        // synthetic head's crown, curved the other way and its board a little off, so the plan's own heights are wrong by
        // up to some tenths (within the probe's reach: more than 1.5 mm and a probe touches nothing, and refuses).
        var plan = SmpRobot.Controller.Plans.DemoPlanGenerator.Generate(150, seed: 8);
        foreach (var dot in plan.Dots) dot.ZMm -= 2.7;
        var session = await c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan }, deadline: DateTime.UtcNow.Add(Timeout));
        Assert.False((await Surface(c).SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = session.Id })).Needed); // its own heights may be used

        var map = await Surface(c).ProbeSurfaceAsync(new ProbeSurfaceRequest { SessionId = session.Id, Points = 25 }, deadline: DateTime.UtcNow.Add(Timeout));

        Assert.True(map.Valid, map.Notes);
        Assert.True(map.HeightMap);
        Assert.Equal(25u, map.Contacts);
        Assert.Contains("height map of 5 × 5 nodes", map.Notes, StringComparison.Ordinal);
        Assert.True(map.MaxMm > 0.2, $"the plan's heights were only {map.MaxMm:0.000} mm off: the test would prove nothing");
        var probed = c.Simulator.MotionRecord.Count;

        await c.StartHeartbeatAsync();
        await c.Sessions.StartAsync(new SessionRef { SessionId = session.Id });
        Assert.Equal(SessionState.Completed, (await c.WaitForAsync(session.Id, ControllerFixture.IsFinished, Timeout)).State);

        var record = c.Simulator.MotionRecord.Skip(probed).ToList();
        var bottoms = record.Zip(record.Skip(1)).Where(p => p.Second.Kind == SimMotionKind.Dwell && p.Second.DurationSeconds > 0.05 && p.First.Kind == SimMotionKind.Feed && p.First.SpindleOn
            && p.First.From.X == p.First.To.X && p.First.From.Y == p.First.To.Y && p.First.To.Z < p.First.From.Z).Select(p => p.First.To).ToList();
        Assert.Equal(plan.Dots.Count, bottoms.Count);
        // Each dot's depth below the real skin along its normal (the plan has none: the map's slope gives it), within
        // the interpolation error over 4 mm cells of a 100 mm head and a step of the grid.
        // (The still head is at the profile's fixed pose, no yaw: a dot's X and Y in H plus its origin.)
        var origin = ControllerFixture.Profile.FixedHead;
        Assert.All(bottoms, b =>
        {
            var dot = plan.Dots.MinBy(d => Math.Pow(d.XMm + origin.OriginXMm - b.X, 2) + Math.Pow(d.YMm + origin.OriginYMm - b.Y, 2))!;
            var skin = Scalp.SkinAt(b.X, b.Y, 0)!.Value;
            Assert.InRange(Vec3.Dot(skin.Point - b, skin.Normal), dot.DepthMm - 0.03, dot.DepthMm + 0.03);
        });
        var audit = c.Services.GetRequiredService<SmpRobot.Controller.Storage.LedgerStore>().ReadAudit(session.Id);
        Assert.Contains(audit, a => a.Kind == "surface" && a.Message.Contains($"placed on height map {map.Id}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_session_whose_skin_was_not_measured_is_refused_naming_the_probe_and_an_override_is_recorded()
    {
        await using var c = await StartAsync(timeScale: 200);
        var session = await CreateAsync(c, await File.ReadAllBytesAsync(ModelPath));
        await c.StartHeartbeatAsync();
        var needed = await Surface(c).SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = session.Id });
        Assert.True(needed.Needed, needed.Reason);
        Assert.Equal(1u, needed.Patch);

        var refused = await Assert.ThrowsAsync<RpcException>(() => c.Sessions.StartAsync(new SessionRef { SessionId = session.Id }).ResponseAsync);

        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Contains($"smp surface probe {session.Id} --patch 1", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("--surface-override", refused.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(c.Simulator.MotionRecord, m => m.SpindleOn);
        Assert.Equal(SessionState.Created, (await c.Sessions.GetAsync(new SessionRef { SessionId = session.Id })).State);

        // Measured, it starts; or, for another session, an override starts it and is recorded with who and why.
        await Surface(c).ProbeSurfaceAsync(new ProbeSurfaceRequest { SessionId = session.Id, Points = 8 }, deadline: DateTime.UtcNow.Add(Timeout));
        Assert.False((await Surface(c).SurfaceNeededAsync(new SurfaceNeededRequest { SessionId = session.Id })).Needed);
        await c.Sessions.StartAsync(new SessionRef { SessionId = session.Id });
        Assert.Equal(SessionState.Completed, (await c.WaitForAsync(session.Id, ControllerFixture.IsFinished, Timeout)).State);

        var other = await CreateAsync(c, await File.ReadAllBytesAsync(ModelPath));
        await c.Sessions.StartAsync(new SessionRef { SessionId = other.Id, SurfaceOverride = "practice pad, no probe fitted" });
        await c.Sessions.AbortAsync(new SessionRef { SessionId = other.Id });
        var audit = c.Services.GetRequiredService<SmpRobot.Controller.Storage.LedgerStore>().ReadAudit(other.Id);
        Assert.Contains(audit, a => a.Kind == "surface-override" && a.Message.Contains("practice pad, no probe fitted", StringComparison.Ordinal) && a.Message.Contains("head position 1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_head_model_that_is_not_the_plans_is_refused_and_nothing_is_created()
    {
        await using var c = await StartAsync();
        var other = (await File.ReadAllBytesAsync(ModelPath)).ToArray();
        other[^1] ^= 1;

        var e = await Assert.ThrowsAsync<RpcException>(() => CreateAsync(c, other));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("not the plan's", e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains(Convert.ToHexStringLower(SHA256.HashData(other)), e.Status.Detail, StringComparison.Ordinal);
        Assert.Empty((await c.Sessions.ListAsync(new ListSessionsRequest())).Sessions);
    }

    [Fact]
    public async Task Probing_a_session_without_its_model_or_an_unknown_head_position_is_refused_saying_what_to_do()
    {
        await using var c = await StartAsync();
        var bare = await CreateAsync(c, null);

        var noModel = await Assert.ThrowsAsync<RpcException>(() => Surface(c).ProbeSurfaceAsync(new ProbeSurfaceRequest { SessionId = bare.Id }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, noModel.StatusCode);
        Assert.Contains("smp run", noModel.Status.Detail, StringComparison.Ordinal);

        var withModel = await CreateAsync(c, await File.ReadAllBytesAsync(ModelPath));
        var badPatch = await Assert.ThrowsAsync<RpcException>(() => Surface(c).ProbeSurfaceAsync(new ProbeSurfaceRequest { SessionId = withModel.Id, Patch = 7 }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badPatch.StatusCode);
        Assert.Contains("no head position 7", badPatch.Status.Detail, StringComparison.Ordinal);
        var badPoints = await Assert.ThrowsAsync<RpcException>(() => Surface(c).ProbeSurfaceAsync(new ProbeSurfaceRequest { SessionId = withModel.Id, Points = 3 }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badPoints.StatusCode);
        var missing = await Assert.ThrowsAsync<RpcException>(() => Surface(c).ProbeSurfaceAsync(new ProbeSurfaceRequest { SessionId = "s-none" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        Assert.DoesNotContain(c.Simulator.MotionRecord, m => m.Kind == SimMotionKind.Probe);
    }
}
