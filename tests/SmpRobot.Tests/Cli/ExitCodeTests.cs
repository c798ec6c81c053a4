using Grpc.Core;
using SmpRobot.Contracts.V1;
using SmpRobot.Operator.Cli;

namespace SmpRobot.Tests.Cli;

public class ExitCodeTests
{
    [Theory]
    [InlineData(StatusCode.InvalidArgument, 2)]
    [InlineData(StatusCode.OutOfRange, 2)]
    [InlineData(StatusCode.FailedPrecondition, 1)]
    [InlineData(StatusCode.Unavailable, 1)]
    [InlineData(StatusCode.DeadlineExceeded, 1)]
    [InlineData(StatusCode.NotFound, 1)]
    [InlineData(StatusCode.Internal, 1)]
    public void Rpc_status_codes_map_to_exit_codes(StatusCode status, int expected) =>
        Assert.Equal(expected, ExitCodes.ForStatus(status));

    [Theory]
    [InlineData(SessionState.Completed, 0, true)]
    [InlineData(SessionState.EmergencyStopped, 3, true)]
    [InlineData(SessionState.Aborted, 3, true)]
    [InlineData(SessionState.Faulted, 1, true)]
    [InlineData(SessionState.Running, 1, false)]
    [InlineData(SessionState.Paused, 1, false)]
    [InlineData(SessionState.Created, 1, false)]
    public void Session_end_states_map_to_exit_codes(SessionState state, int expected, bool isEnd)
    {
        Assert.Equal(expected, ExitCodes.ForSessionState(state));
        Assert.Equal(isEnd, ExitCodes.IsEndState(state));
    }

    [Fact]
    public void A_detached_follow_exits_by_whether_an_estop_was_sent()
    {
        var paused = new Session { State = SessionState.Paused };
        Assert.Equal(ExitCodes.Success, new FollowResult(paused, Detached: true).ExitCode);
        Assert.Equal(ExitCodes.Stopped, new FollowResult(new Session { State = SessionState.Running }, Detached: true, EmergencyStopSent: true).ExitCode);
        Assert.Equal(ExitCodes.Stopped, new FollowResult(new Session { State = SessionState.EmergencyStopped }, Detached: false).ExitCode);
    }

    [Fact]
    public void Unreachable_and_refused_calls_get_operator_messages()
    {
        var url = new Uri("http://127.0.0.1:50051");
        var unreachable = new RpcException(new Status(StatusCode.Unavailable, "Error connecting to subchannel.", new HttpRequestException("refused")));
        Assert.Equal("cannot reach the controller at http://127.0.0.1:50051: is smp-controller running? (Error connecting to subchannel.)",
            CommandContext.DescribeRpcError(unreachable, url));
        var refused = new RpcException(new Status(StatusCode.FailedPrecondition, "machine is not homed"));
        Assert.Equal("machine is not homed", CommandContext.DescribeRpcError(refused, url));
    }
}
