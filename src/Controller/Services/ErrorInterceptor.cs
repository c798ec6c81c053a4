using Grpc.Core;
using Grpc.Core.Interceptors;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Sessions;

namespace SmpRobot.Controller.Services;

/// <summary>
/// Turns domain exceptions into gRPC statuses with the operator-facing message, so no service
/// repeats the mapping and no stack trace ever reaches a client. Covers all four call kinds.
/// </summary>
internal sealed class ErrorInterceptor : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception e) when (Map(e) is { } rpc)
        {
            throw rpc;
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception e) when (Map(e) is { } rpc)
        {
            throw rpc;
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(requestStream, context);
        }
        catch (Exception e) when (Map(e) is { } rpc)
        {
            throw rpc;
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception e) when (Map(e) is { } rpc)
        {
            throw rpc;
        }
    }

    private static RpcException? Map(Exception e) => e switch
    {
        RpcException => null,
        // A streamed request message that does not parse (unary requests are checked by RequestValidation).
        Google.Protobuf.InvalidProtocolBufferException p => new RpcException(new Status(StatusCode.InvalidArgument, "a request message is not valid: " + p.Message)),
        RefusedException s => Mapping.ToRpc(s),
        GantryFaultException g => new RpcException(new Status(StatusCode.FailedPrecondition, $"gantry: {g.Message}")),
        MotionRefusedException m => new RpcException(new Status(StatusCode.FailedPrecondition, m.Message)),
        GantryInUseException u => new RpcException(new Status(StatusCode.FailedPrecondition, "gantry: " + u.Message)),
        InvalidOperationException i => new RpcException(new Status(StatusCode.FailedPrecondition, i.Message)),
        // The controller answers; its record store does not ("record store unreachable: postgres://…: …"): the caller may try again.
        Storage.StoreUnavailableException u => new RpcException(new Status(StatusCode.Unavailable, u.Message)),
        TimeoutException => new RpcException(new Status(StatusCode.DeadlineExceeded, "the gantry did not answer in time")),
        _ => null,
    };
}
