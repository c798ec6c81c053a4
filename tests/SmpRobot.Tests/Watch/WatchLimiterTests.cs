using Grpc.Core;
using SmpRobot.Controller.Services;

namespace SmpRobot.Tests.Watch;

public class WatchLimiterTests
{
    [Fact]
    public void Watches_are_capped_per_connection_and_in_total_and_released_when_they_end()
    {
        var limiter = new WatchLimiter(maxPerConnection: 2, maxTotal: 3);
        var a1 = limiter.Acquire("a");
        var a2 = limiter.Acquire("a");
        var perConnection = Assert.Throws<RpcException>(() => limiter.Acquire("a"));
        Assert.Equal(StatusCode.ResourceExhausted, perConnection.StatusCode);
        Assert.Contains("at most 2 per connection", perConnection.Status.Detail);
        var b1 = limiter.Acquire("b");
        var total = Assert.Throws<RpcException>(() => limiter.Acquire("c"));
        Assert.Equal(StatusCode.ResourceExhausted, total.StatusCode);
        Assert.Contains("at most 3 in all", total.Status.Detail);
        Assert.Equal(3, limiter.Open);

        a1.Dispose();
        a1.Dispose(); // twice is once
        Assert.Equal(2, limiter.Open);
        using var a3 = limiter.Acquire("a");
        a2.Dispose();
        b1.Dispose();
        Assert.Equal(1, limiter.Open);
    }
}
