export {
  sendFile,
  receiveFile,
  type SendFileOptions,
  type ReceiveFileOptions,
  type FileTransferResult,
  type FileTransferCallback,
} from './file-transfer';
export {
  sendFileOver,
  type SendFileOverOptions,
  type StreamOpenerLike,
  type StreamCreator,
  type StreamPoolHolder,
  type FileMeta,
} from './send-file-over';
