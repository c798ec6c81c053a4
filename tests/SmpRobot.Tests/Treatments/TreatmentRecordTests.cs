using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Tests.Integration;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Planning;

namespace SmpRobot.Tests.Treatments;

/// <summary>A treatment's sessions are made from its design, and its record keeps every dot in S.</summary>
[Collection(ControllerCollection.Name)]
public class TreatmentRecordTests : IAsyncLifetime
{
    private static readonly string DesignPath = Path.Combine(TestProfiles.RepoRoot, "hardware", "designs", "demo-crown.design.json");
    private static readonly string MeshPath = Path.Combine(TestProfiles.RepoRoot, "hardware", "heads", "adult-synthetic.ply");

    private ControllerFixture _c = null!;
    private TreatmentService.TreatmentServiceClient _treatments = null!;

    public async Task InitializeAsync()
    {
        _c = await ControllerFixture.StartAsync();
        _treatments = new TreatmentService.TreatmentServiceClient(_c.Channel);
    }

    public async Task DisposeAsync() => await _c.DisposeAsync();

    private static async Task<StartTreatmentRequest> RequestAsync(string clientId = "C-0042") => new()
    {
        ClientId = clientId,
        DesignJson = await File.ReadAllTextAsync(DesignPath),
        HeadModel = ByteString.CopyFrom(await File.ReadAllBytesAsync(MeshPath)),
        HeadModelFile = "adult-synthetic.ply",
    };

    private static DateTime Deadline => DateTime.UtcNow.AddMinutes(2);

    [Fact]
    public async Task Starting_a_treatment_makes_session_1_from_the_design_with_every_dot_in_the_scalp_frame()
    {
        var info = await _treatments.StartTreatmentAsync(await RequestAsync(), deadline: Deadline);

        Assert.StartsWith("t-", info.Id, StringComparison.Ordinal);
        Assert.Equal("C-0042", info.ClientId);
        Assert.Equal("demo crown", info.DesignName);
        var first = Assert.Single(info.Sessions);
        Assert.Equal(1u, first.Number);
        Assert.Equal(SessionState.Created, first.Session.State);

        // The design's own session 1, dot for dot (the bundled demo plan is that session).
        var check = DesignResolver.Resolve(DesignLoader.Load(DesignPath), ControllerFixture.Profile);
        var dots = DesignPlanner.Generate(check.Design!);
        var plans = DesignPlans.Build(dots, ControllerFixture.Profile);
        Assert.Equal(plans.Sessions[0].Plan.Dots.Count, first.Session.Dots.Total);

        var record = await DotsAsync(info.Id);
        Assert.Equal(first.Session.Dots.Total, record.Count);
        var byId = dots.Dots.ToDictionary(d => d.Id);
        foreach (var d in record)
        {
            var design = byId[d.DesignDotId];
            Assert.Equal(1, design.Session);
            Assert.Equal(design.PointMm.X, d.PlannedXMm, 9);
            Assert.Equal(design.PointMm.Y, d.PlannedYMm, 9);
            Assert.Equal(design.PointMm.Z, d.PlannedZMm, 9);
            Assert.Equal(DotState.Pending, d.State);
            Assert.Equal(DotCheck.NotChecked, d.Check);
            Assert.False(d.Measured);
        }

        var listed = await _treatments.ListTreatmentsAsync(new ListTreatmentsRequest { ClientId = "C-0042" }, deadline: Deadline);
        Assert.Equal(info.Id, Assert.Single(listed.Treatments).Id);
        Assert.Empty((await _treatments.ListTreatmentsAsync(new ListTreatmentsRequest { ClientId = "C-0043" }, deadline: Deadline)).Treatments);
    }

    [Fact]
    public async Task The_next_session_waits_for_the_last_to_end_and_for_the_days_the_design_asks_then_is_the_designs_next()
    {
        var info = await _treatments.StartTreatmentAsync(await RequestAsync(), deadline: Deadline);
        var first = info.Sessions[0].Session;

        var running = await Assert.ThrowsAsync<RpcException>(() => _treatments.NextSessionAsync(new NextSessionRequest { TreatmentId = info.Id }, deadline: Deadline).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, running.StatusCode);
        Assert.Contains("finish or abort it first", running.Status.Detail, StringComparison.Ordinal);

        await _c.Sessions.AbortAsync(new SessionRef { SessionId = first.Id });
        var tooSoon = await Assert.ThrowsAsync<RpcException>(() => _treatments.NextSessionAsync(new NextSessionRequest { TreatmentId = info.Id }, deadline: Deadline).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, tooSoon.StatusCode);
        Assert.Contains("days between session 1 and session 2", tooSoon.Status.Detail, StringComparison.Ordinal);
        Assert.Single((await _treatments.GetTreatmentAsync(new TreatmentRef { TreatmentId = info.Id })).Sessions);

        var second = await _treatments.NextSessionAsync(new NextSessionRequest { TreatmentId = info.Id, EarlyReason = "test: sessions back to back" }, deadline: Deadline);
        Assert.Equal(2, second.Sessions.Count);
        Assert.Equal(2u, second.Sessions[1].Number);
        var record = await DotsAsync(info.Id);
        var sessionTwo = record.Where(d => d.SessionNumber == 2).ToList();
        Assert.Equal(second.Sessions[1].Session.Dots.Total, sessionTwo.Count);
        Assert.Empty(sessionTwo.Select(d => d.DesignDotId).Intersect(record.Where(d => d.SessionNumber == 1).Select(d => d.DesignDotId)));

        var ledger = _c.Services.GetRequiredService<LedgerStore>();
        Assert.Contains(ledger.ReadAudit(null), a => a.Kind == "treatment-early" && a.Message.Contains("test: sessions back to back", StringComparison.Ordinal));

        // The demo design has two sessions.
        await _c.Sessions.AbortAsync(new SessionRef { SessionId = second.Sessions[1].Session.Id });
        var all = await Assert.ThrowsAsync<RpcException>(() => _treatments.NextSessionAsync(new NextSessionRequest { TreatmentId = info.Id, EarlyReason = "test" }, deadline: Deadline).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, all.StatusCode);
        Assert.Contains("touch-up", all.Status.Detail, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> BadClientIds => new()
    {
        { "empty", "" },
        { "a name with a space", "John Smith" },
        { "too long", new string('c', 65) },
        { "path", "../C-1" },
        { "newline", "C-1\nC-2" },
    };

    [Theory]
    [MemberData(nameof(BadClientIds))]
    public async Task A_client_id_that_is_not_a_short_pseudonym_is_refused_and_nothing_is_stored(string what, string clientId)
    {
        var request = await RequestAsync(clientId);
        var e = await Assert.ThrowsAsync<RpcException>(() => _treatments.StartTreatmentAsync(request, deadline: Deadline).ResponseAsync);
        Assert.True(e.StatusCode == StatusCode.InvalidArgument, what);
        Assert.Contains("pseudonymous", e.Status.Detail, StringComparison.Ordinal);
        Assert.Empty((await _treatments.ListTreatmentsAsync(new ListTreatmentsRequest())).Treatments);
        Assert.Empty((await _c.Sessions.ListAsync(new ListSessionsRequest())).Sessions);
    }

    [Fact]
    public async Task A_design_that_does_not_check_or_a_missing_or_wrong_head_model_is_refused_and_nothing_is_stored()
    {
        var broken = await RequestAsync();
        broken.DesignJson = broken.DesignJson.Replace("\"densityPerCm2\": 110", "\"densityPerCm2\": 900", StringComparison.Ordinal);
        var e = await Assert.ThrowsAsync<RpcException>(() => _treatments.StartTreatmentAsync(broken, deadline: Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("does not check", e.Status.Detail, StringComparison.Ordinal);

        var noModel = await RequestAsync();
        noModel.HeadModel = ByteString.Empty;
        e = await Assert.ThrowsAsync<RpcException>(() => _treatments.StartTreatmentAsync(noModel, deadline: Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);

        var notAMesh = await RequestAsync();
        notAMesh.HeadModel = ByteString.CopyFromUtf8("ply\nformat ascii 1.0\nelement vertex 3\nend_header\n0 0\n");
        e = await Assert.ThrowsAsync<RpcException>(() => _treatments.StartTreatmentAsync(notAMesh, deadline: Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);

        var notJson = await RequestAsync();
        notJson.DesignJson = "{ \"name\": ";
        e = await Assert.ThrowsAsync<RpcException>(() => _treatments.StartTreatmentAsync(notJson, deadline: Deadline).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);

        Assert.Empty((await _treatments.ListTreatmentsAsync(new ListTreatmentsRequest())).Treatments);
        Assert.Empty((await _c.Sessions.ListAsync(new ListSessionsRequest())).Sessions);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => _treatments.GetTreatmentAsync(new TreatmentRef { TreatmentId = "t-nope" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task A_store_cut_off_while_a_treatment_starts_stores_neither_it_nor_its_session_and_a_retry_makes_one_treatment()
    {
        // The store goes away after the treatment's row and before its session 1's link: the answer is UNAVAILABLE, and
        // no treatment stands without its first session (the operator's retry would otherwise make a second treatment).
        var ledger = _c.Services.GetRequiredService<LedgerStore>();
        ledger.TreatmentSessionCheckedForTests = _ =>
        {
            ledger.TreatmentSessionCheckedForTests = null;
            throw new StoreUnavailableException("the test's store", new TimeoutException("the connection was cut"));
        };
        var e = await Assert.ThrowsAsync<RpcException>(async () => await _treatments.StartTreatmentAsync(await RequestAsync(), deadline: Deadline));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Empty((await _treatments.ListTreatmentsAsync(new ListTreatmentsRequest(), deadline: Deadline)).Treatments);
        Assert.Empty((await _c.Sessions.ListAsync(new ListSessionsRequest(), deadline: Deadline)).Sessions);

        var info = await _treatments.StartTreatmentAsync(await RequestAsync(), deadline: Deadline);
        Assert.Equal(info.Id, Assert.Single((await _treatments.ListTreatmentsAsync(new ListTreatmentsRequest { ClientId = "C-0042" }, deadline: Deadline)).Treatments).Id);
        Assert.Equal(1u, Assert.Single(info.Sessions).Number);
        Assert.Single(ledger.ReadAudit(null), a => a.Kind == "treatment-created");
    }

    [Fact]
    public async Task The_store_keeps_the_cameras_check_and_refuses_a_second_session_of_the_same_number()
    {
        var info = await _treatments.StartTreatmentAsync(await RequestAsync(), deadline: Deadline);
        var ledger = _c.Services.GetRequiredService<LedgerStore>();
        var sessionId = info.Sessions[0].Session.Id;
        var dots = ledger.LoadDots(sessionId);

        ledger.RecordDotCheck(sessionId, dots[0].Dot.DotId, DotCheckResult.OffTarget, new Vec3(1, 2, 3), 0.31);
        ledger.RecordDotCheck(sessionId, dots[1].Dot.DotId, DotCheckResult.NotSeen, null, null);
        Assert.Throws<KeyNotFoundException>(() => ledger.RecordDotCheck(sessionId, "no-such-dot", DotCheckResult.OnTarget, Vec3.Zero, 0));

        var record = ledger.LoadTreatmentDots(info.Id);
        var off = record.Single(d => d.DotId == dots[0].Dot.DotId);
        Assert.Equal(DotCheckResult.OffTarget, off.Check);
        Assert.Equal(new Vec3(1, 2, 3), off.MeasuredS);
        Assert.Equal(0.31, off.CheckOffsetMm);
        Assert.Equal(DotCheckResult.NotSeen, record.Single(d => d.DotId == dots[1].Dot.DotId).Check);

        var left = ledger.LeaveOut(sessionId, new Dictionary<string, string> { [dots[2].Dot.DotId] = "left out: 0.4 mm from an earlier dot" });
        Assert.Equal(1, left);
        Assert.Equal(DotLedgerState.Skipped, ledger.LoadDots(sessionId).Single(d => d.Dot.DotId == dots[2].Dot.DotId).State);
        Assert.Equal(1, ledger.Tally(sessionId).Skipped);
        Assert.Throws<InvalidOperationException>(() => ledger.LeaveOut(sessionId, new Dictionary<string, string> { [dots[2].Dot.DotId] = "again" }));

        var link = new TreatmentSessionLink(info.Id, 1, TreatmentSessionKind.Session, new Dictionary<string, DotInScalp> { ["x1"] = new("x1", new Vec3(0, 0, 90)) });
        var duplicate = Assert.Throws<InvalidOperationException>(() => ledger.CreateTreatmentSession("again", "{}", "sim", [new PlannedDot(0, "x1", 0, 0, 0, 0.8, 100, "p")], link));
        Assert.Contains("already has session 1", duplicate.Message, StringComparison.Ordinal);
        var missing = new TreatmentSessionLink(info.Id, 5, TreatmentSessionKind.TouchUp, new Dictionary<string, DotInScalp>());
        Assert.Throws<ArgumentException>(() => ledger.CreateTreatmentSession("x", "{}", "sim", [new PlannedDot(0, "x1", 0, 0, 0, 0.8, 100, "p")], missing));
        Assert.Single(ledger.ListTreatmentSessions(info.Id));
    }

    private async Task<List<TreatmentDot>> DotsAsync(string treatmentId)
    {
        using var call = _treatments.ListTreatmentDots(new TreatmentRef { TreatmentId = treatmentId }, deadline: Deadline);
        var dots = new List<TreatmentDot>();
        while (await call.ResponseStream.MoveNext(CancellationToken.None)) dots.AddRange(call.ResponseStream.Current.Dots);
        return dots;
    }
}
