import EbbCore

/// One request's work in one step.
public struct ScheduledRequest: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Admitted for the first time: the model runner sets up its state.
        case new
        /// Admitted again after a preemption or a migration from another rank: it
        /// re-prefills its prompt and the tokens it generated so far.
        case resumed
        /// Was running in the previous step (decode or next prefill chunk).
        case running
    }

    public let requestId: String
    public let kind: Kind
    /// Tokens to feed this step: a prompt chunk (after any prefix-cache hit), the rest
    /// of a re-prefill, or the last sampled token of a decode.
    public let tokenIds: [TokenID]
    /// Position of `tokenIds[0]`: the request's `numComputedTokens` before this step.
    public let startPosition: Int
    /// The request's whole block table after allocation; it covers at least
    /// `startPosition + tokenIds.count` tokens. Token at position `p` goes in block
    /// `blockTable[p / blockSize]`, slot `p % blockSize`, in every layer.
    public let blockTable: [Int32]
    /// For `.new`/`.resumed`: tokens skipped thanks to the prefix cache (a multiple of
    /// the block size, already included in `startPosition`). 0 for `.running`.
    public let numCachedTokens: Int
    /// Prompt length of the request.
    public let numPromptTokens: Int
    /// Tokens the request has (prompt + generated) before this step.
    public let numTotalTokens: Int
    /// True when this step computes the request's last known token, so the model runner
    /// must sample the next one: a decode, or the last chunk of a (re-)prefill. False for
    /// earlier prefill chunks (their logits are discarded).
    public let samplesNextToken: Bool

    public init(
        requestId: String, kind: Kind, tokenIds: [TokenID], startPosition: Int, blockTable: [Int32],
        numCachedTokens: Int, numPromptTokens: Int, numTotalTokens: Int, samplesNextToken: Bool
    ) {
        self.requestId = requestId
        self.kind = kind
        self.tokenIds = tokenIds
        self.startPosition = startPosition
        self.blockTable = blockTable
        self.numCachedTokens = numCachedTokens
        self.numPromptTokens = numPromptTokens
        self.numTotalTokens = numTotalTokens
        self.samplesNextToken = samplesNextToken
    }

    public var numTokens: Int { tokenIds.count }

    /// A one-token step of a request that was already running, past its prompt.
    public var isDecode: Bool {
        kind == .running && tokenIds.count == 1 && startPosition >= numPromptTokens
    }

    /// Any step that is not a decode: a prompt chunk or part of a re-prefill.
    public var isPrefill: Bool { !isDecode }

    /// The last chunk of a (re-)prefill: sample after it.
    public var isLastPrefillChunk: Bool { isPrefill && samplesNextToken }

    /// Flat KV slot (`block * blockSize + offset`) of each fed token, as the model
    /// runner's `slot_mapping`. Empty if the table were too short (never, when produced
    /// by the scheduler).
    public func slotMapping(blockSize: Int) -> [Int] {
        guard blockSize > 0 else { return [] }
        var slots: [Int] = []
        slots.reserveCapacity(tokenIds.count)
        for p in startPosition..<(startPosition + tokenIds.count) {
            let i = p / blockSize
            guard i < blockTable.count else { return [] }
            slots.append(Int(blockTable[i]) * blockSize + p % blockSize)
        }
        return slots
    }
}

/// What one ``Scheduler/schedule()`` decided.
public struct SchedulerOutput: Sendable, Equatable {
    /// Step number (1, 2, …); ``Scheduler/update(afterStep:sampled:finished:)`` must get
    /// the output of the latest step.
    public let step: UInt64
    /// Scheduled requests: running ones first (in running order), then newly admitted.
    public let scheduled: [ScheduledRequest]
    /// Requests preempted in this step (their blocks are freed; they wait to be resumed).
    public let preempted: [String]
    /// Sum of `tokenIds.count` over `scheduled`; never above `maxNumBatchedTokens`.
    public let numScheduledTokens: Int

    public init(step: UInt64, scheduled: [ScheduledRequest], preempted: [String], numScheduledTokens: Int) {
        self.step = step
        self.scheduled = scheduled
        self.preempted = preempted
        self.numScheduledTokens = numScheduledTokens
    }

    /// Nothing to compute (the rank still runs a dummy batch if others have work).
    public var isEmpty: Bool { scheduled.isEmpty }

    public func request(_ id: String) -> ScheduledRequest? { scheduled.first { $0.requestId == id } }
}

/// A request that stopped, and why.
public struct FinishedRequest: Sendable, Equatable {
    public let requestId: String
    public let reason: FinishReason
    public init(requestId: String, reason: FinishReason) {
        self.requestId = requestId
        self.reason = reason
    }
}

/// What ``Scheduler/update(afterStep:sampled:finished:)`` did.
public struct SchedulerUpdate: Sendable, Equatable {
    /// Tokens appended to each request in this update (those that sampled).
    public var appended: [String: [TokenID]] = [:]
    /// Requests removed in this update, with the reason: the caller's, or `.length` when
    /// the scheduler stopped one that reached `maxTokensPerRequest`.
    public var finished: [FinishedRequest] = []
    public init() {}
}

/// Where a request is in the scheduler.
public enum RequestStatus: Sendable, Equatable {
    /// Never ran, or was migrated in: waits for admission.
    case waiting
    /// Holds blocks and is scheduled every step it has tokens to compute.
    case running
    /// Was preempted (blocks freed, computed tokens reset); waits to be resumed.
    case preempted
}

/// A request's transferable state: enough to re-create it on another rank with
/// ``Scheduler/addResumedRequest(_:)`` (recompute by re-prefilling prompt + generated
/// tokens). Codable so the control plane can carry it.
public struct MigratedRequest: Sendable, Equatable, Codable {
    public var requestId: String
    public var promptTokenIds: [TokenID]
    public var outputTokenIds: [TokenID]
    public var priority: Int
    /// Extra prefix-cache key (e.g. a LoRA or model id), or nil.
    public var cacheExtraKey: UInt64?

    public init(
        requestId: String, promptTokenIds: [TokenID], outputTokenIds: [TokenID], priority: Int = 0,
        cacheExtraKey: UInt64? = nil
    ) {
        self.requestId = requestId
        self.promptTokenIds = promptTokenIds
        self.outputTokenIds = outputTokenIds
        self.priority = priority
        self.cacheExtraKey = cacheExtraKey
    }
}

/// A read-only view of one request inside the scheduler.
public struct RequestSnapshot: Sendable, Equatable {
    public let requestId: String
    public let status: RequestStatus
    public let promptTokenIds: [TokenID]
    public let outputTokenIds: [TokenID]
    public let priority: Int
    /// Order of arrival on this scheduler (0, 1, …).
    public let arrivalIndex: UInt64
    public let numComputedTokens: Int
    /// Prefix-cache hit at its latest admission.
    public let numCachedTokens: Int
    public let numPreemptions: Int
    public let cacheExtraKey: UInt64?
    public let blockTable: [Int32]

    public var migrated: MigratedRequest {
        MigratedRequest(
            requestId: requestId, promptTokenIds: promptTokenIds, outputTokenIds: outputTokenIds,
            priority: priority, cacheExtraKey: cacheExtraKey)
    }
}
