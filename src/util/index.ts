export { sendFile, receiveFile, type SendFileOptions, type ReceiveFileOptions, type FileTransferResult } from './file-transfer';
export { sendFileOver, type SendFileOverOptions, type StreamOpenerLike } from './send-file-over';
