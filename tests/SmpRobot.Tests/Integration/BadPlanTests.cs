using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Plans;

namespace SmpRobot.Tests.Integration;

[Collection(ControllerCollection.Name)]
public class BadPlanTests : IAsyncLifetime
{
    private ControllerFixture _c = null!;

    public async Task InitializeAsync() => _c = await ControllerFixture.StartAsync();

    public async Task DisposeAsync() => await _c.DisposeAsync();

    public static TheoryData<string, string> BadFiles => new()
    {
        { "malformed", "{\"name\": \"x\", \"units\": \"mm\", \"dots\": [ {\"id\": \"d1\", \"xMm\": 1,, } ] }" },
        { "truncated", "{\"name\": \"x\", \"units\": \"mm\", \"dots\": [ {\"id\": \"d1\", \"xMm\": 1" },
        { "empty", "" },
        { "whitespace", "   \n" },
        { "wrong type", "{\"units\": \"mm\", \"dots\": [ {\"id\": \"d1\", \"xMm\": \"left\"} ] }" },
        { "dots not a list", "{\"units\": \"mm\", \"dots\": {\"id\": \"d1\"} }" },
        { "json bomb", new string('[', 100_000) + new string(']', 100_000) },
        { "not json", "G1 X10 Y10" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public async Task Malformed_plans_get_invalid_argument_with_a_clear_message(string what, string json)
    {
        var e = await Assert.ThrowsAsync<RpcException>(() => _c.Sessions.ValidatePlanAsync(new ValidatePlanRequest { PlanJson = json }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.DoesNotContain("   at ", e.Status.Detail); // no stack trace
        var violations = Violations(e);
        Assert.True(violations.Total >= 1, what);
        Assert.NotEmpty(violations.Violations[0].Message);
    }

    [Fact]
    public async Task An_oversized_plan_is_refused_by_size()
    {
        var huge = "{\"units\":\"mm\",\"name\":\"" + new string('x', (int)ControllerFixture.Profile.MaxPlanBytes) + "\"}";
        var e = await Assert.ThrowsAsync<RpcException>(() => _c.Sessions.ValidatePlanAsync(new ValidatePlanRequest { PlanJson = huge }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Equal("file-size", Violations(e).Violations.Single().Rule);
    }

    [Fact]
    public async Task Every_rule_violation_is_listed_with_its_dot_and_nothing_is_created()
    {
        var plan = DemoPlanGenerator.Generate(20, seed: 2);
        plan.Dots[3].DepthMm = 5;              // beyond the needle's depth limit
        plan.Dots[4].Id = plan.Dots[5].Id;     // duplicate id
        plan.Dots[6].DwellMs = double.NaN;     // not finite
        plan.Dots[7].PigmentId = "neon-pink";  // not loaded
        var before = (await _c.Sessions.ListAsync(new ListSessionsRequest())).Sessions.Count;

        var e = await Assert.ThrowsAsync<RpcException>(() => _c.Sessions.CreateSessionAsync(new CreateSessionRequest { Plan = plan }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        var v = Violations(e);
        Assert.Contains(v.Violations, x => x.DotId == plan.Dots[3].Id && x.Rule == "depth-range");
        Assert.Contains(v.Violations, x => x.DotId == plan.Dots[5].Id && x.Rule == "duplicate-id");
        Assert.Contains(v.Violations, x => x.DotId == plan.Dots[6].Id && x.Rule == "non-finite");
        Assert.Contains(v.Violations, x => x.DotId == plan.Dots[7].Id && x.Rule == "pigment-unknown");
        Assert.Contains("depth", e.Status.Detail);
        Assert.Equal(before, (await _c.Sessions.ListAsync(new ListSessionsRequest())).Sessions.Count);
    }

    [Fact]
    public async Task A_valid_plan_reports_its_size_and_kinematic_estimate()
    {
        var reply = await _c.Sessions.ValidatePlanAsync(new ValidatePlanRequest { Plan = DemoPlanGenerator.Generate(50, seed: 4) });
        Assert.Equal(50, reply.DotCount);
        Assert.True(reply.EstimatedKinematicSeconds > 50 * 0.15, $"{reply.EstimatedKinematicSeconds} s is less than the dwell alone");
        Assert.Equal("sim", reply.ProfileName);
    }

    private static PlanViolations Violations(RpcException e)
    {
        var entry = e.Trailers.Get("plan-violations-bin");
        Assert.NotNull(entry);
        return PlanViolations.Parser.ParseFrom(entry.ValueBytes);
    }
}
