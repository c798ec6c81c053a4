using Grpc.Core;
using SmpRobot.Controller;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Services;

namespace SmpRobot.Tests.Unit;

/// <summary>
/// The interceptor on its own, the unit tier of grpc-dotnet's testing guide: each of the four call kinds
/// is driven with a test call context and a continuation that throws, no server. The hosted tests
/// (Integration, EndToEnd) show the same mapping through Kestrel for the calls the console makes.
/// </summary>
public class ErrorInterceptorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    public static TheoryData<string, StatusCode, string> Mapped => new()
    {
        { "refused-not-found", StatusCode.NotFound, "session s-9 does not exist" },
        { "refused-invalid", StatusCode.InvalidArgument, "a reason is required" },
        { "refused-precondition", StatusCode.FailedPrecondition, "home the machine first" },
        { "gantry-fault", StatusCode.FailedPrecondition, "gantry: ALARM:1 hard limit" },
        { "motion-refused", StatusCode.FailedPrecondition, "the emergency stop is latched" },
        { "gantry-in-use", StatusCode.FailedPrecondition, "gantry: /dev/ttyACM0 is held by process 42" },
        { "invalid-operation", StatusCode.FailedPrecondition, "a session is running" },
        { "timeout", StatusCode.DeadlineExceeded, "the gantry did not answer in time" },
        { "bad-message", StatusCode.InvalidArgument, "a request message is not valid: " },
    };

    private static Exception Make(string kind) => kind switch
    {
        "refused-not-found" => new RefusedException(RefusalKind.NotFound, "session s-9 does not exist"),
        "refused-invalid" => new RefusedException(RefusalKind.InvalidArgument, "a reason is required"),
        "refused-precondition" => new RefusedException(RefusalKind.FailedPrecondition, "home the machine first"),
        "gantry-fault" => new GantryFaultException(GantryFaultKind.Alarm, 1, "ALARM:1 hard limit"),
        "motion-refused" => new MotionRefusedException("the emergency stop is latched"),
        "gantry-in-use" => new GantryInUseException("/dev/ttyACM0 is held by process 42"),
        "invalid-operation" => new InvalidOperationException("a session is running"),
        "timeout" => new TimeoutException("grbl: no ok within 2 s (internal detail)"),
        "bad-message" => Unparsable(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>What the protobuf parser throws for bytes that are not a message (its constructor is not public).</summary>
    private static Google.Protobuf.InvalidProtocolBufferException Unparsable()
    {
        try
        {
            SmpRobot.Contracts.V1.EmergencyStopRequest.Parser.ParseFrom([0x00]);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            return e;
        }
        throw new InvalidOperationException("a zero tag parsed");
    }

    [Theory]
    [MemberData(nameof(Mapped))]
    public async Task Every_call_kind_turns_a_domain_exception_into_its_status_and_operator_text(string kind, StatusCode code, string messageStart)
    {
        foreach (var call in CallKinds)
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => call(Make(kind)).WaitAsync(Timeout));
            Assert.Equal(code, e.StatusCode);
            Assert.StartsWith(messageStart, e.Status.Detail, StringComparison.Ordinal);
            // No internal detail (a timeout's own text, a stack trace) reaches the client.
            Assert.DoesNotContain("internal detail", e.Status.Detail, StringComparison.Ordinal);
            Assert.DoesNotContain(" at ", e.Status.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task An_RpcException_passes_through_as_thrown_in_every_call_kind()
    {
        var thrown = new RpcException(new Status(StatusCode.ResourceExhausted, "three watchers already"));
        foreach (var call in CallKinds)
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => call(thrown).WaitAsync(Timeout));
            Assert.Same(thrown, e);
        }
    }

    [Fact]
    public async Task An_unexpected_exception_is_not_dressed_as_a_refusal()
    {
        // A bug stays a bug: gRPC answers it UNKNOWN without detail (EnableDetailedErrors is off), and
        // the log keeps the stack trace; it is never reported to the operator as a precondition.
        foreach (var call in CallKinds)
        {
            await Assert.ThrowsAsync<NullReferenceException>(() => call(new NullReferenceException()).WaitAsync(Timeout));
        }
    }

    [Fact]
    public async Task A_call_that_succeeds_returns_its_response_untouched()
    {
        var interceptor = new ErrorInterceptor();
        var context = new TestServerCallContext();
        Assert.Equal("pong", await interceptor.UnaryServerHandler<string, string>("ping", context, (_, _) => Task.FromResult("pong")).WaitAsync(Timeout));
        var writer = new ListWriter();
        await interceptor.ServerStreamingServerHandler<string, string>("ping", writer, context, async (_, w, _) => await w.WriteAsync("a")).WaitAsync(Timeout);
        Assert.Equal(["a"], writer.Written);
        Assert.Equal("n", await interceptor.ClientStreamingServerHandler<string, string>(new EmptyReader(), context, (_, _) => Task.FromResult("n")).WaitAsync(Timeout));
    }

    /// <summary>The four call kinds, each given a continuation that throws the exception.</summary>
    private static IEnumerable<Func<Exception, Task>> CallKinds
    {
        get
        {
            var interceptor = new ErrorInterceptor();
            var context = new TestServerCallContext();
            yield return e => interceptor.UnaryServerHandler<string, string>("request", context, (_, _) => Task.FromException<string>(e));
            yield return e => interceptor.ServerStreamingServerHandler<string, string>("request", new ListWriter(), context, async (_, w, _) =>
            {
                await w.WriteAsync("first");
                throw e;
            });
            yield return e => interceptor.ClientStreamingServerHandler<string, string>(new EmptyReader(), context, async (r, _) =>
            {
                await r.MoveNext(CancellationToken.None);
                throw e;
            });
            yield return e => interceptor.DuplexStreamingServerHandler<string, string>(new EmptyReader(), new ListWriter(), context, (_, _, _) => Task.FromException(e));
        }
    }

    private sealed class ListWriter : IServerStreamWriter<string>
    {
        public List<string> Written { get; } = [];
        public WriteOptions? WriteOptions { get; set; }
        public Task WriteAsync(string message)
        {
            Written.Add(message);
            return Task.CompletedTask;
        }
    }

    private sealed class EmptyReader : IAsyncStreamReader<string>
    {
        public string Current => throw new InvalidOperationException("the stream is empty");
        public Task<bool> MoveNext(CancellationToken cancellationToken) => Task.FromResult(false);
    }
}

/// <summary>
/// A <see cref="ServerCallContext"/> for calling services and interceptors directly, as grpc-dotnet's
/// testing guide does. Written here because the packaged one (Grpc.Core.Testing) belongs to the retired
/// native Grpc.Core stack, which the project does not otherwise need.
/// </summary>
internal sealed class TestServerCallContext(string method = "/test/Method", string peer = "ipv4:127.0.0.1:1") : ServerCallContext
{
    private readonly Metadata _requestHeaders = [];
    private readonly Metadata _responseTrailers = [];
    private readonly Dictionary<object, object> _userState = [];
    private Status _status;
    private WriteOptions? _writeOptions;

    /// <summary>Headers the handler wrote with WriteResponseHeadersAsync, if it did.</summary>
    public Metadata? ResponseHeaders { get; private set; }

    protected override string MethodCore => method;
    protected override string HostCore => "localhost";
    protected override string PeerCore => peer;
    protected override DateTime DeadlineCore => DateTime.MaxValue;
    protected override Metadata RequestHeadersCore => _requestHeaders;
    protected override CancellationToken CancellationTokenCore => CancellationToken.None;
    protected override Metadata ResponseTrailersCore => _responseTrailers;
    protected override Status StatusCore { get => _status; set => _status = value; }
    protected override WriteOptions? WriteOptionsCore { get => _writeOptions; set => _writeOptions = value; }
    protected override AuthContext AuthContextCore => new(null, []);
    protected override IDictionary<object, object> UserStateCore => _userState;

    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
        throw new NotSupportedException("the test context does not propagate calls");

    protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders)
    {
        if (ResponseHeaders is not null) throw new InvalidOperationException("response headers were already written");
        ResponseHeaders = responseHeaders;
        return Task.CompletedTask;
    }
}
