using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Core.Interceptors;
using SmpRobot.Controller.Security;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Controller.Services;

/// <summary>
/// Writes every state-changing unary call (<see cref="RpcPolicy.Audited"/>) to the store's append-only audit log once
/// it has ended: who (identity and role), which RPC, its arguments (bounded), its result and when. The e-stop's entry
/// is written after its reply, off the path of the stop. Runs outside <see cref="ErrorInterceptor"/>, so it records
/// the status the caller received.
/// </summary>
internal sealed partial class AuditInterceptor(LedgerStore store, DeferredAuditWrites deferred, TimeProvider time, ILogger<AuditInterceptor> log) : Interceptor
{
    /// <summary>Longest arguments text kept; longer requests (plans, head models) are cut, with their full length noted.</summary>
    public const int MaxArgumentsLength = 4000;

    private static readonly JsonFormatter Json = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(false));

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        if (RpcPolicies.Of(CanonicalPath(context)) is not { Audited: true }) return await continuation(request, context);
        var at = time.GetUtcNow();
        try
        {
            var response = await continuation(request, context);
            // A call that creates a session names it only in its reply.
            Record(context, request, at, "OK", (response as Contracts.V1.Session)?.Id);
            return response;
        }
        catch (RpcException e)
        {
            Record(context, request, at, $"{e.StatusCode}: {Bounded.Cut(e.Status.Detail, Bounded.MaxReasonLength)}");
            throw;
        }
        catch (Exception e)
        {
            Record(context, request, at, "failed: " + Bounded.Cut(e.Message, Bounded.MaxReasonLength));
            throw;
        }
    }

    private void Record(ServerCallContext context, object request, DateTimeOffset at, string result, string? replySessionId = null)
    {
        var who = TokenAuthenticationHandler.IdentityOf(context.GetHttpContext().User);
        var (arguments, sessionId) = Describe(request);
        sessionId ??= replySessionId;
        var identity = who?.Name ?? "(unauthenticated)";
        var role = who?.Role.Name() ?? "";
        // Everything taken from the call now: a deferred write runs after the call (and its context) has ended.
        var rpc = CanonicalPath(context);
        void Write()
        {
            try
            {
                store.AppendCallAudit(at, identity, role, rpc, sessionId, arguments, result);
            }
            catch (Exception e) when (e is ObjectDisposedException or Microsoft.Data.Sqlite.SqliteException or InvalidOperationException or StoreUnavailableException)
            {
                Log.NotRecorded(log, rpc, identity, e.Message);
            }
        }
        if (rpc == SafetyGrpcService.EmergencyStopPath)
        {
            deferred.Add(Task.Run(Write));
        }
        else
        {
            Write();
        }
    }

    /// <summary>
    /// The method's own path ("/smprobot.v1.SessionService/Start"), from the endpoint that serves the call: routing
    /// matches paths without regard to case, and <see cref="ServerCallContext.Method"/> is the path as the client sent it.
    /// </summary>
    internal static string CanonicalPath(ServerCallContext context) =>
        GrpcPipeline.MethodPath(context.GetHttpContext());

    /// <summary>The request as JSON (cut to <see cref="MaxArgumentsLength"/>) and the session it names, if any.</summary>
    internal static (string Arguments, string? SessionId) Describe(object request)
    {
        if (request is not IMessage message) return ("", null);
        var json = Json.Format(message);
        if (json.Length > MaxArgumentsLength) json = json[..MaxArgumentsLength] + FormattableString.Invariant($"… ({json.Length} characters)");
        var sessionField = message.Descriptor.FindFieldByName("session_id");
        var sessionId = sessionField is { FieldType: FieldType.String } && sessionField.Accessor.GetValue(message) is string s && s.Length > 0 ? Bounded.Cut(s, Bounded.MaxIdLength) : null;
        return (json, sessionId);
    }

    private static partial class Log
    {
        // (the e-stop's entries are written by DeferredAuditWrites' tasks)
        [LoggerMessage(Level = LogLevel.Error, Message = "The audit log could not record {Rpc} by {Identity}: {Reason}")]
        public static partial void NotRecorded(ILogger log, string rpc, string identity, string reason);
    }
}

/// <summary>The audit entries written after their call's reply (the e-stop's), so shutdown and tests can wait for them.</summary>
internal sealed class DeferredAuditWrites
{
    private readonly Lock _gate = new();
    private readonly List<Task> _pending = [];

    public void Add(Task write)
    {
        lock (_gate)
        {
            _pending.RemoveAll(t => t.IsCompleted);
            _pending.Add(write);
        }
    }

    /// <summary>Completes when every entry added so far is written.</summary>
    public Task WhenWritten()
    {
        lock (_gate) return Task.WhenAll(_pending.ToArray());
    }
}
